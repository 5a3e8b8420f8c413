// The worker's own data-root check (worker/agent/spec_convert.h CheckDataPaths) and how a
// violation is classified: BAD_DATASET, which the coordinator does not retry; and the roots passed
// down to the image folders a job opens, which check each file (a symlink inside the folder).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/worker/data/test_images.h"
#include "worker/agent/attempt_runner.h"
#include "worker/agent/spec_convert.h"
#include "worker/dino/failure_kind.h"
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
  EXPECT_EQ(ClassifyFailure(WithFailureKind(status, FailureKind::kData)),
            dino::v1::FAILURE_REASON_BAD_DATASET);
  std::system(("rm -rf " + dir).c_str());
}

TEST(DataRootsTest, ImageFoldersOfAJobSkipFilesThatEscapeTheWorkersRoots) {
  char tmpl[] = "/tmp/dino_worker_folder_roots_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  char resolved[PATH_MAX];
  ASSERT_NE(::realpath(tmpl, resolved), nullptr);
  const std::string dir = resolved;
  const std::string root = dir + "/data", folder = root + "/set";
  ASSERT_EQ(std::system(("mkdir -p " + folder + "/k " + dir + "/private").c_str()), 0);
  const torch::Tensor image = torch::full({1, 8, 8}, 7, torch::kUInt8);
  ASSERT_TRUE(data::testing::WritePng(folder + "/k/0.png", image));
  ASSERT_TRUE(data::testing::WritePng(dir + "/private/secret.png", image));
  ASSERT_EQ(::symlink((dir + "/private/secret.png").c_str(), (folder + "/k/1.png").c_str()), 0);
  absl::StatusOr<PathConfinement> roots = PathConfinement::FromFlag(root);
  ASSERT_TRUE(roots.ok()) << roots.status();

  dino::v1::JobSpec spec;
  spec.mutable_model()->set_preset("custom");
  spec.mutable_model()->set_dim(16);
  spec.mutable_model()->set_depth(1);
  spec.mutable_model()->set_heads(2);
  spec.mutable_model()->set_patch_size(4);
  spec.mutable_model()->set_in_channels(1);
  spec.mutable_head()->set_out_dim(16);
  spec.mutable_head()->set_hidden_dim(16);
  spec.mutable_head()->set_bottleneck_dim(8);
  spec.mutable_augmentation()->set_global_crop_size(8);
  spec.mutable_augmentation()->set_local_crop_size(4);
  spec.mutable_optim()->set_batch_size_per_rank(2);
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IMAGE_FOLDER);
  spec.mutable_data()->set_path(folder);
  spec.mutable_data()->set_eval_path(folder);
  ASSERT_TRUE(CheckDataPaths(spec, *roots).ok());  // The folder itself is inside.

  LocalResources local;
  local.data_roots = *roots;
  absl::StatusOr<run::RunOptions> options = RunOptionsFromSpec(spec, local);
  ASSERT_TRUE(options.ok()) << options.status();
  ASSERT_TRUE(options->eval_test.has_value());
  for (const data::DatasetSpec* dataset_spec : {&options->data, &*options->eval_test}) {
    absl::StatusOr<std::shared_ptr<data::Dataset>> dataset = data::OpenDataset(*dataset_spec);
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    EXPECT_EQ((*dataset)->size(), 1);           // k/1.png (-> private/secret.png) is skipped...
    EXPECT_EQ((*dataset)->corrupt_files(), 1);  // ...and counted.
  }
  // Without roots the worker reads both (what --data-roots prevents).
  options = RunOptionsFromSpec(spec, LocalResources());
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::shared_ptr<data::Dataset>> unconfined = data::OpenDataset(options->data);
  ASSERT_TRUE(unconfined.ok()) << unconfined.status();
  EXPECT_EQ((*unconfined)->size(), 2);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace dino::agent
