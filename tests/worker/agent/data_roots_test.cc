// The worker's own data-root check (worker/agent/spec_convert.h CheckDataPaths) and how a
// violation is classified: BAD_DATASET, which the coordinator does not retry.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/cord.h"
#include "worker/agent/attempt_runner.h"
#include "worker/agent/spec_convert.h"
#include "worker/run/training_run.h"

namespace dino::agent {
namespace {

using ::testing::HasSubstr;

TEST(DataRootsTest, WorkerRefusesPathsOutsideItsRootsAsBadDataset) {
  char tmpl[] = "/tmp/dino_worker_roots_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  char resolved[PATH_MAX];
  ASSERT_NE(::realpath(tmpl, resolved), nullptr);
  const std::string dir = resolved;
  const std::string root = dir + "/data";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::symlink("/etc", (root + "/etc").c_str()), 0);
  absl::StatusOr<PathConfinement> roots = PathConfinement::FromFlag(root);
  ASSERT_TRUE(roots.ok()) << roots.status();

  dino::v1::JobSpec spec;
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
  spec.mutable_data()->set_path(root + "/train-images.gz");
  EXPECT_TRUE(CheckDataPaths(spec, *roots).ok());
  EXPECT_TRUE(CheckDataPaths(spec, PathConfinement::Unconfined()).ok());

  spec.mutable_data()->set_eval_labels_path(root + "/etc/passwd");  // A symlink out of the root.
  absl::Status status = CheckDataPaths(spec, *roots);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("data.eval_labels_path"));
  EXPECT_THAT(status.message(), HasSubstr("resolves to /etc/passwd"));
  spec.mutable_data()->clear_eval_labels_path();
  spec.mutable_data()->set_labels_path(root + "/../x");
  EXPECT_THAT(CheckDataPaths(spec, *roots).message(), HasSubstr("data.labels_path"));

  // AttemptRunner marks the violation as a data failure: BAD_DATASET, never retried.
  status.SetPayload(run::kPhasePayload, absl::Cord("data"));
  EXPECT_EQ(ClassifyFailure(status), dino::v1::FAILURE_REASON_BAD_DATASET);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace dino::agent
