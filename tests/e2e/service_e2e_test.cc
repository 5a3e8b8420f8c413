// End to end: real dino-coordinator and dino-worker processes on loopback train tiny synthetic
// jobs: happy paths on 1 and 2 ranks, a killed worker, a killed coordinator (restarted on its data
// dir, also spelled another way), cancel, a bad data path, and the exported teacher loaded by
// PyTorch.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "tests/e2e/cluster.h"

namespace dino::e2e {
namespace {

using dino::v1::Job;

std::string Python() { return "/usr/bin/python3"; }

TEST(ServiceE2E, OneRankJobSucceedsWithCheckpointsMetricsKnnAndLoadableExport) {
  Cluster cluster("one-rank");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(TinySpec(1, 2)));
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), kJobTimeout));
  ASSERT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString() << cluster.Logs();
  EXPECT_EQ(done.restarts(), 0);
  EXPECT_TRUE(done.has_latest_knn_top1()) << done.DebugString();
  EXPECT_GT(done.latest_stats().step(), 0);
  ASSERT_OK_AND_ASSIGN(ckpts, cluster.Checkpoints(job.id()));
  ASSERT_FALSE(ckpts.empty());
  bool has_final = false;
  for (const auto& c : ckpts) has_final |= c.is_final();
  EXPECT_TRUE(has_final);

  const std::string teacher =
      absl::StrCat(cluster.worker_dir(0), "/", job.id(), "/attempt-1-rank-0/teacher_backbone.pth");
  ASSERT_TRUE(std::ifstream(teacher).good()) << teacher;
  const std::string cmd =
      absl::StrCat(Python(), " ", std::getenv("DINO_SOURCE_ROOT"), "/tests/e2e/load_export.py ",
                   teacher, " 2 > ", cluster.dir(), "/load_export.log 2>&1");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "see " << cluster.dir() << "/load_export.log";

#ifdef DINOCTL_BIN
  // `dinoctl export` of the final checkpoint through the coordinator loads the same way.
  const std::string exported = cluster.dir() + "/dinoctl_export.pt";
  const std::string export_cmd = absl::StrCat(
      DINOCTL_BIN, " --coordinator ", cluster.coordinator_address(), " export ", job.id(), " -o ",
      exported, " > ", cluster.dir(), "/dinoctl_export.log 2>&1 && ", Python(), " ",
      std::getenv("DINO_SOURCE_ROOT"), "/tests/e2e/load_export.py ", exported, " 2 >> ",
      cluster.dir(), "/dinoctl_export.log 2>&1");
  EXPECT_EQ(std::system(export_cmd.c_str()), 0) << "see " << cluster.dir() << "/dinoctl_export.log";
#endif
}

TEST(ServiceE2E, TwoRankJobSucceeds) {
  Cluster cluster("two-rank");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  cluster.StartWorker(1);
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(TinySpec(2, 2)));
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), kJobTimeout));
  ASSERT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString() << cluster.Logs();
  ASSERT_FALSE(done.attempts().empty());
  EXPECT_EQ(done.attempts(0).ranks_size(), 2);
  EXPECT_TRUE(done.has_latest_knn_top1());
}

TEST(ServiceE2E, KilledWorkerIsReplacedAndTheJobResumesFromItsCheckpoint) {
  Cluster cluster("worker-crash");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  cluster.StartWorker(1);
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(TinySpec(2, 30)));
  // Kill rank 1's worker once a checkpoint past step 0 is committed.
  ASSERT_OK_AND_ASSIGN(
      running, cluster.WaitFor(
                   job.id(), [](const Job& j) { return !j.latest_checkpoint_id().empty(); },
                   kJobTimeout));
  cluster.KillWorker(1);
  cluster.StartWorker(1);
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), kJobTimeout));
  ASSERT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString() << cluster.Logs();
  EXPECT_EQ(done.restarts(), 1) << done.DebugString();
  ASSERT_GE(done.attempts_size(), 2);
  EXPECT_GT(done.attempts(1).resume_step(), 0) << done.DebugString();
  EXPECT_FALSE(done.attempts(1).resume_checkpoint_id().empty());
}

// Kills the coordinator of a one-rank job once it has a checkpoint and restarts it on its data dir,
// reached through `spelling` (a path relative to the cluster's dir) when set. Every checkpoint
// acknowledged before the kill is listed afterwards (or was retired by the keep-last policy in
// favour of a newer one), every listed one downloads with its sha256, the job succeeds, and no
// checkpoint file was removed as unreferenced.
void KillAndRestartTheCoordinatorMidJob(const std::string& name, const std::string& spelling) {
  Cluster cluster(name);
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(TinySpec(1, 30)));
  ASSERT_OK_AND_ASSIGN(
      running, cluster.WaitFor(
                   job.id(), [](const Job& j) { return !j.latest_checkpoint_id().empty(); },
                   kJobTimeout));
  ASSERT_OK_AND_ASSIGN(before, cluster.Checkpoints(job.id()));
  ASSERT_FALSE(before.empty());
  cluster.KillCoordinator();
  absl::SleepFor(absl::Seconds(1));
  if (!spelling.empty()) cluster.data_dir_spelling = cluster.dir() + spelling;
  cluster.StartCoordinator();
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), kJobTimeout));
  ASSERT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString() << cluster.Logs();
  ASSERT_OK_AND_ASSIGN(after, cluster.Checkpoints(job.id()));
  ASSERT_FALSE(after.empty());
  for (const auto& c : before) {
    bool listed = false;
    for (const auto& a : after) listed |= a.id() == c.id();
    if (!listed) {
      EXPECT_GT(after.back().step(), c.step()) << "checkpoint " << c.id() << " vanished";
    }
  }
  for (const auto& c : after) {
    absl::StatusOr<std::string> bytes = cluster.Download(job.id(), c.id());
    ASSERT_TRUE(bytes.ok()) << c.id() << ": " << bytes.status();
    EXPECT_EQ(static_cast<int64_t>(bytes->size()), c.size_bytes()) << c.id();
    EXPECT_EQ(Sha256::Of(*bytes), c.sha256()) << c.id();
  }
  EXPECT_EQ(cluster.Logs().find("removing unreferenced checkpoint file"), std::string::npos)
      << cluster.Logs();
}

TEST(ServiceE2E, KilledCoordinatorRestartsOnItsDataDirAndLosesNoCheckpoint) {
  KillAndRestartTheCoordinatorMidJob("coordinator-crash", "");
}

TEST(ServiceE2E, CoordinatorRestartedOnItsDataDirSpelledAnotherWayKeepsEveryCheckpoint) {
  // The same directory, with a "." component and a trailing slash.
  KillAndRestartTheCoordinatorMidJob("respelled-data-dir", "/./coordinator/");
}

TEST(ServiceE2E, CancelStopsTheJobAndTheWorkerTakesTheNextOne) {
  Cluster cluster("cancel");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(TinySpec(1, 200)));
  ASSERT_OK_AND_ASSIGN(
      running,
      cluster.WaitFor(
          job.id(), [](const Job& j) { return j.latest_stats().step() > 0; }, kJobTimeout));
  {
    grpc::ClientContext context;
    dino::v1::CancelJobRequest request;
    request.set_job_id(job.id());
    dino::v1::Job cancelled;
    ASSERT_TRUE(cluster.jobs()->CancelJob(&context, request, &cancelled).ok());
  }
  const absl::Time asked = absl::Now();
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), absl::Seconds(30)));
  EXPECT_EQ(done.state(), dino::v1::JOB_STATE_CANCELLED) << done.DebugString();
  EXPECT_LT(absl::Now() - asked, absl::Seconds(5));
  ASSERT_OK_AND_ASSIGN(next, cluster.Submit(TinySpec(1, 1)));
  ASSERT_OK_AND_ASSIGN(next_done, cluster.WaitTerminal(next.id(), kJobTimeout));
  EXPECT_EQ(next_done.state(), dino::v1::JOB_STATE_SUCCEEDED) << cluster.Logs();
}

TEST(ServiceE2E, BadDataPathFailsWithThatReasonAndNoRetries) {
  Cluster cluster("bad-data");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  dino::v1::JobSpec spec = TinySpec(1, 1);
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
  spec.mutable_data()->set_path("/nonexistent/train-images-idx3-ubyte.gz");
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(spec));
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), kJobTimeout));
  EXPECT_EQ(done.state(), dino::v1::JOB_STATE_FAILED);
  EXPECT_EQ(done.failure_reason(), dino::v1::FAILURE_REASON_BAD_DATASET) << done.DebugString();
  EXPECT_EQ(done.restarts(), 0);
  EXPECT_NE(done.message().find("/nonexistent"), std::string::npos) << done.message();
}

}  // namespace
}  // namespace dino::e2e
