// What the Coordinator commits when a write races the end of its attempt or when the store fails
// part-way: checkpoint uploads fenced at commit, re-sent uploads, one transaction for a job and its
// gang, reconciliation on recovery, retried liveness, the collapse count across a restart, and the
// progress deadline. Simulated clock, in-memory faults; no sleeping.
#include <memory>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/server/coordinator_fixture.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using dino::v1::JobState;

class CoordinatorFencingTest : public testing::CoordinatorFixture {
 protected:
  JobState State(const std::string& job_id) { return coordinator_->GetJob(job_id)->state(); }

  // An upload whose bytes were all sent, not committed yet.
  std::unique_ptr<CheckpointUpload> BeginUpload(const std::string& job_id, int attempt,
                                                const TestWorker& w, int64_t step,
                                                const std::string& data) {
    auto upload = SendCheckpoint(job_id, attempt, w, step, data);
    EXPECT_TRUE(upload.ok()) << upload.status();
    return upload.ok() ? std::move(*upload) : nullptr;
  }

  int CheckpointEvents(const std::string& job_id) {
    auto events = store_->ListEvents(job_id, 0, 0);
    EXPECT_TRUE(events.ok()) << events.status();
    int count = 0;
    for (const auto& event : *events) count += event.has_checkpoint();
    return count;
  }

  // Files under the job's checkpoint directory.
  std::vector<std::string> BlobFiles(const std::string& job_id) {
    auto files = DefaultFileSystem()->ListDir(dir_ + "/blobs/" + job_id);
    return files.ok() ? *files : std::vector<std::string>{};
  }

  // Advances the clock by `total` in steps of 4 s, heartbeating `workers` and ticking each time.
  void RunFor(absl::Duration total, const std::vector<TestWorker>& workers) {
    for (absl::Duration t; t < total; t += absl::Seconds(4)) {
      clock_.Advance(absl::Seconds(4));
      for (const auto& w : workers) ASSERT_TRUE(coordinator_->Heartbeat(w.id, {}).ok());
      coordinator_->Tick();
    }
  }

  dino::v1::ReportProgressRequest Progress(const TestWorker& w, const std::string& job_id,
                                           int64_t step, double kl = 1.0) {
    dino::v1::ReportProgressRequest request = ProgressFrom(w, job_id);
    auto* stats = request.add_stats();
    stats->set_step(step);
    stats->set_epoch(1);
    stats->set_kl(kl);
    stats->set_batch_mean_entropy(5.0);
    return request;
  }
};

TEST_F(CoordinatorFencingTest, UploadInFlightWhenItsAttemptFailedIsNotCommitted) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  auto kept = UploadCheckpoint(job, 1, a, 10, "weights at step 10");
  ASSERT_TRUE(kept.ok()) << kept.status();
  auto upload = BeginUpload(job, 1, a, 20, "weights at step 20");
  ASSERT_NE(upload, nullptr);
  // The attempt fails while the bytes are in flight, and the job restarts on the same worker.
  ASSERT_TRUE(Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_FAILED,
                     dino::v1::FAILURE_REASON_COLLECTIVE_ABORT)
                  .ok());
  coordinator_->Tick();
  ASSERT_EQ(coordinator_->GetJob(job)->attempts_size(), 2);
  EXPECT_EQ(coordinator_->GetJob(job)->attempts(1).resume_checkpoint_id(), kept->id());

  auto late = coordinator_->FinishCheckpointUpload(std::move(upload), Sha256::Of("weights at step 20"));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  auto listed = coordinator_->ListCheckpoints(job);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id(), kept->id());  // Still the latest: the new attempt resumes from it.
  EXPECT_EQ(coordinator_->GetJob(job)->latest_checkpoint_id(), kept->id());
  EXPECT_EQ(BlobFiles(job).size(), 1u);  // The refused blob is gone.
}

TEST_F(CoordinatorFencingTest, UploadInFlightWhenTheJobWasCancelledIsNotCommitted) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  auto upload = BeginUpload(job, 1, a, 20, "weights at step 20");
  ASSERT_NE(upload, nullptr);
  ASSERT_TRUE(coordinator_->CancelJob(job, "").ok());
  auto late = coordinator_->FinishCheckpointUpload(std::move(upload), Sha256::Of("weights at step 20"));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  EXPECT_TRUE(coordinator_->ListCheckpoints(job)->empty());
  EXPECT_TRUE(coordinator_->GetJob(job)->latest_checkpoint_id().empty());
  EXPECT_EQ(CheckpointEvents(job), 0);
  EXPECT_TRUE(BlobFiles(job).empty());
}

TEST_F(CoordinatorFencingTest, CheckpointRowAndItsJobUpdateCommitTogether) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  faulty_->FailSaveJob(1);
  auto failed = UploadCheckpoint(job, 1, a, 10, "weights at step 10");
  EXPECT_FALSE(failed.ok());  // The worker is told, and sends it again.
  EXPECT_TRUE(coordinator_->ListCheckpoints(job)->empty());
  EXPECT_TRUE(BlobFiles(job).empty());

  auto again = UploadCheckpoint(job, 1, a, 10, "weights at step 10");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(coordinator_->GetJob(job)->latest_checkpoint_id(), again->id());
  EXPECT_EQ(CheckpointEvents(job), 1);
}

TEST_F(CoordinatorFencingTest, ResentUploadCatchesUpAJobThatMissedItsCheckpoint) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  // A row whose job update and event never happened (a coordinator that committed them apart and
  // stopped in between).
  dino::v1::CheckpointInfo info;
  info.set_job_id(job);
  info.set_attempt(1);
  info.set_step(10);
  info.set_size_bytes(18);
  info.set_knn_top1(42.5);
  auto upload = registry_->BeginUpload(info);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->Append("weights at step 10").ok());
  auto orphan = registry_->Commit(std::move(*upload), Sha256::Of("weights at step 10"));
  ASSERT_TRUE(orphan.ok()) << orphan.status();
  EXPECT_TRUE(coordinator_->GetJob(job)->latest_checkpoint_id().empty());

  // The worker lost the reply and sends the same bytes again.
  auto resent = UploadCheckpoint(job, 1, a, 10, "weights at step 10");
  ASSERT_TRUE(resent.ok()) << resent.status();
  EXPECT_EQ(resent->id(), orphan->id());
  auto got = coordinator_->GetJob(job);
  EXPECT_EQ(got->latest_checkpoint_id(), orphan->id());
  EXPECT_DOUBLE_EQ(got->best_knn_top1(), 42.5);
  EXPECT_EQ(CheckpointEvents(job), 1);
  // A third copy changes nothing more.
  ASSERT_TRUE(UploadCheckpoint(job, 1, a, 10, "weights at step 10").ok());
  EXPECT_EQ(CheckpointEvents(job), 1);
  EXPECT_EQ(coordinator_->ListCheckpoints(job)->size(), 1u);
}

TEST_F(CoordinatorFencingTest, AJobAndItsGangAreStoredInOneTransaction) {
  TestWorker a = AddWorker();
  faulty_->FailSaveWorker(-1);  // Only the job's transaction may record the gang.
  const std::string job = Submit(testing::TinySpec());
  ASSERT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  faulty_->FailSaveWorker(0);
  Open();  // A crash right after the job started.
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  auto workers = coordinator_->ListWorkers(false);
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].state(), dino::v1::WORKER_STATE_BUSY);
  EXPECT_EQ(workers[0].job_id(), job);
  EXPECT_EQ(workers[0].attempt(), 1);
}

TEST_F(CoordinatorFencingTest, RecoveryFailsARunningAttemptWhoseWorkerIsStoredIdle) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  ASSERT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  // What an older coordinator left when it died between storing the job and its worker.
  dino::v1::WorkerInfo idle = coordinator_->ListWorkers(false)[0];
  idle.set_state(dino::v1::WORKER_STATE_IDLE);
  idle.clear_job_id();
  idle.clear_attempt();
  idle.clear_rank();
  ASSERT_TRUE(store_->SaveWorker(idle).ok());
  Open();
  auto got = coordinator_->GetJob(job);
  EXPECT_EQ(got->state(), dino::v1::JOB_STATE_RESTARTING);
  EXPECT_EQ(got->attempts(0).failure_reason(), dino::v1::FAILURE_REASON_COORDINATOR);
  // The worker comes back and the job runs again.
  AddWorker("cpu", a.id);
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(coordinator_->GetJob(job)->attempts_size(), 2);
}

TEST_F(CoordinatorFencingTest, StoreErrorWhileDeclaringAWorkerDeadIsRetriedOnTheNextTick) {
  TestWorker a = AddWorker();
  TestWorker b = AddWorker();
  const std::string job = Submit(testing::TinySpec(2));
  a.channel->Take();
  b.channel->Take();
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(coordinator_->Heartbeat(b.id, {}).ok());
  clock_.Advance(absl::Seconds(10));  // a is silent for 20 s > 15 s.
  ASSERT_TRUE(coordinator_->Heartbeat(b.id, {}).ok());
  faulty_->FailSaveJob(1);
  coordinator_->Tick();
  // Nothing was decided: b was not told to stop, a is not dead, the job still runs.
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(b.channel->Take().empty());
  EXPECT_EQ(coordinator_->ListWorkers(false).size(), 2u);

  coordinator_->Tick();
  auto got = coordinator_->GetJob(job);
  EXPECT_NE(got->state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got->attempts(0).failure_reason(), dino::v1::FAILURE_REASON_WORKER_LOST);
  auto to_b = b.channel->Take();
  ASSERT_FALSE(to_b.empty());
  EXPECT_TRUE(to_b[0].has_abort());
  EXPECT_EQ(coordinator_->ListWorkers(false).size(), 1u);  // a is dead.
}

TEST_F(CoordinatorFencingTest, CollapseCountSurvivesACoordinatorRestart) {
  TestWorker a = AddWorker();
  auto spec = testing::TinySpec();
  spec.mutable_collapse()->set_consecutive_reports(3);
  spec.mutable_collapse()->set_min_kl(0.5);
  spec.mutable_collapse()->set_ignore_before_epoch(0);
  const std::string job = Submit(spec);
  ASSERT_TRUE(coordinator_->ReportProgress(Progress(a, job, 1, 0.01)).ok());
  ASSERT_TRUE(coordinator_->ReportProgress(Progress(a, job, 2, 0.01)).ok());
  EXPECT_FALSE(coordinator_->GetJob(job)->collapse_flagged());
  Open();
  ASSERT_TRUE(coordinator_->ReportProgress(Progress(a, job, 3, 0.01)).ok());
  auto got = coordinator_->GetJob(job);
  EXPECT_TRUE(got->collapse_flagged());
  ASSERT_EQ(got->collapse_warnings_size(), 1);
  EXPECT_EQ(got->collapse_warnings(0).step(), 3);
  EXPECT_EQ(got->collapse_warnings(0).consecutive_reports(), 3);
}

TEST_F(CoordinatorFencingTest, AttemptWithoutNewStepsIsFailedAsStalledAndRestarted) {
  TestWorker a = AddWorker();
  auto spec = testing::TinySpec();
  spec.set_progress_timeout_seconds(60);
  const std::string job = Submit(spec);
  RunFor(absl::Seconds(40), {a});
  ASSERT_TRUE(coordinator_->ReportProgress(Progress(a, job, 5)).ok());
  RunFor(absl::Seconds(40), {a});
  // 80 s since the start, but only 40 s since step 5.
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  // The same step again is not progress.
  ASSERT_TRUE(coordinator_->ReportProgress(Progress(a, job, 5)).ok());
  a.channel->Take();
  RunFor(absl::Seconds(24), {a});
  RunFor(absl::Seconds(4), {a});  // Its next heartbeat says it dropped the stalled attempt.
  auto got = coordinator_->GetJob(job);
  ASSERT_GE(got->attempts_size(), 1);
  EXPECT_EQ(got->attempts(0).state(), dino::v1::ATTEMPT_STATE_FAILED);
  EXPECT_EQ(got->attempts(0).failure_reason(), dino::v1::FAILURE_REASON_STALLED);
  EXPECT_NE(got->attempts(0).failure_message().find("last reported step is 5"), std::string::npos)
      << got->attempts(0).failure_message();
  // The worker was told to abort and the job was restarted (on the same, now idle, worker).
  auto to_a = a.channel->Take();
  ASSERT_FALSE(to_a.empty());
  EXPECT_TRUE(to_a[0].has_abort());
  EXPECT_EQ(got->attempts_size(), 2);
  EXPECT_EQ(got->state(), dino::v1::JOB_STATE_RUNNING);
}

TEST_F(CoordinatorFencingTest, ProgressTimeoutOfZeroNeverStalls) {
  TestWorker a = AddWorker();
  auto spec = testing::TinySpec();
  spec.set_progress_timeout_seconds(0);
  const std::string job = Submit(spec);
  RunFor(absl::Hours(3), {a});
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(coordinator_->GetJob(job)->attempts_size(), 1);
}

TEST_F(CoordinatorFencingTest, ProgressTimeoutDefaultsToAnHour) {
  AddWorker();
  const std::string job = Submit(testing::TinySpec());
  EXPECT_EQ(coordinator_->GetJob(job)->spec().progress_timeout_seconds(), 3600);
}

}  // namespace
}  // namespace dino::server
