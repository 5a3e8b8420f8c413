// Graceful departures (SIGTERM on a worker): a leaving worker is never scheduled again, and the
// failure of its attempt, however its peers notice it, is a preemption that is retried without
// counting against max_restarts or in Job.restarts. Simulated clock, recording channels.
#include <memory>
#include <string>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/server/coordinator_fixture.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using dino::v1::Job;
using testing::RecordingChannel;

class PreemptionTest : public testing::CoordinatorFixture {
 protected:
  // A job that may not restart at all: any failure that counted would fail it.
  std::string SubmitNoRestarts(int world_size) {
    dino::v1::JobSpec spec = testing::TinySpec(world_size);
    spec.set_max_restarts(0);
    return Submit(spec);
  }

  Job Get(const std::string& job_id) { return *coordinator_->GetJob(job_id); }

  absl::StatusOr<dino::v1::CheckpointInfo> Checkpoint(const std::string& job_id, int attempt,
                                                      const TestWorker& w, int64_t step) {
    return UploadCheckpoint(job_id, attempt, w, step, "weights at step " + std::to_string(step));
  }

  dino::v1::WorkerState StateOf(const std::string& worker_id) {
    for (const auto& w : coordinator_->ListWorkers(true)) {
      if (w.id() == worker_id) return w.state();
    }
    return dino::v1::WORKER_STATE_UNSPECIFIED;
  }
};

TEST_F(PreemptionTest, PeerAbortAfterLeavingIsAPreemptionAndResumesWithoutARestart) {
  TestWorker a = AddWorker();
  TestWorker b = AddWorker();
  const std::string job = SubmitNoRestarts(2);
  ASSERT_EQ(Get(job).state(), dino::v1::JOB_STATE_RUNNING);
  a.channel->Take();
  b.channel->Take();
  auto checkpoint = Checkpoint(job, 1, a, 40);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();

  // b (rank 1) gets SIGTERM: the attempt keeps running until someone reports.
  ASSERT_TRUE(coordinator_->WorkerLeaving(b.id, "SIGTERM").ok());
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(StateOf(b.id), dino::v1::WORKER_STATE_BUSY);

  // Rank 0 notices the gone peer first and reports a collective abort.
  ASSERT_TRUE(Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_FAILED,
                     dino::v1::FAILURE_REASON_COLLECTIVE_ABORT)
                  .ok());
  Job got = Get(job);
  EXPECT_EQ(got.state(), dino::v1::JOB_STATE_RESTARTING) << got.DebugString();
  EXPECT_EQ(got.attempts(0).failure_reason(), dino::v1::FAILURE_REASON_PREEMPTED);
  EXPECT_EQ(got.restarts(), 0);
  EXPECT_EQ(got.preemptions(), 1);
  EXPECT_THAT(got.message(), ::testing::HasSubstr("preempted"));
  auto to_b = b.channel->Take();
  ASSERT_EQ(to_b.size(), 1u);
  EXPECT_TRUE(to_b[0].has_abort());
  // b's own late report is about an attempt that already ended.
  EXPECT_TRUE(
      Result(job, 1, b, 1, dino::v1::ATTEMPT_OUTCOME_FAILED, dino::v1::FAILURE_REASON_PREEMPTED)
          .ok());
  // b is idle and still connected, but leaving: the job waits for a replacement.
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_RESTARTING);
  EXPECT_TRUE(b.channel->Take().empty());

  TestWorker c = AddWorker();
  got = Get(job);
  ASSERT_EQ(got.state(), dino::v1::JOB_STATE_RUNNING);
  ASSERT_EQ(got.attempts_size(), 2);
  EXPECT_EQ(got.attempts(1).ranks(0).worker_id(), a.id);
  EXPECT_EQ(got.attempts(1).ranks(1).worker_id(), c.id);
  EXPECT_EQ(got.attempts(1).resume_step(), 40);
  EXPECT_EQ(got.restarts(), 0);
  auto to_c = c.channel->Take();
  ASSERT_EQ(to_c.size(), 1u);
  EXPECT_EQ(to_c[0].assignment().resume_checkpoint().id(), checkpoint->id());

  // b's stream ends: it is gone.
  coordinator_->DetachWorker(b.id, b.channel.get());
  EXPECT_EQ(StateOf(b.id), dino::v1::WORKER_STATE_DEAD);

  ASSERT_TRUE(Result(job, 2, c, 1, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  ASSERT_TRUE(Result(job, 2, a, 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  got = Get(job);
  EXPECT_EQ(got.state(), dino::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got.restarts(), 0);
  EXPECT_EQ(got.preemptions(), 1);
}

TEST_F(PreemptionTest, PreemptedReportWithoutLeavingStillPreemptsAndRealFailuresStillCount) {
  TestWorker a = AddWorker();
  const std::string job = SubmitNoRestarts(1);
  ASSERT_TRUE(
      Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_FAILED, dino::v1::FAILURE_REASON_PREEMPTED)
          .ok());
  // Not re-assigned to the worker that is going away.
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_RESTARTING);
  EXPECT_EQ(StateOf(a.id), dino::v1::WORKER_STATE_IDLE);
  coordinator_->DetachWorker(a.id, a.channel.get());
  EXPECT_EQ(StateOf(a.id), dino::v1::WORKER_STATE_DEAD);

  // Survives a coordinator restart: restarts and preemptions come from the stored attempts.
  Open();
  Job got = Get(job);
  EXPECT_EQ(got.preemptions(), 1);
  TestWorker b = AddWorker();
  got = Get(job);
  ASSERT_EQ(got.state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got.attempts_size(), 2);
  EXPECT_EQ(got.restarts(), 0);

  // A real failure after the preemption is the first counted one: max_restarts 0 fails the job.
  ASSERT_TRUE(Result(job, 2, b, 0, dino::v1::ATTEMPT_OUTCOME_FAILED,
                     dino::v1::FAILURE_REASON_COLLECTIVE_ABORT)
                  .ok());
  got = Get(job);
  EXPECT_EQ(got.state(), dino::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got.failure_reason(), dino::v1::FAILURE_REASON_COLLECTIVE_ABORT);
  EXPECT_THAT(got.message(), ::testing::HasSubstr("max_restarts 0 exhausted"));
}

TEST_F(PreemptionTest, LeavingIdleWorkerIsNeverScheduledAndIsGoneWhenItsStreamEnds) {
  TestWorker a = AddWorker();
  ASSERT_TRUE(coordinator_->WorkerLeaving(a.id, "SIGTERM").ok());
  const std::string job = SubmitNoRestarts(1);
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(a.channel->Take().empty());
  coordinator_->DetachWorker(a.id, a.channel.get());
  EXPECT_EQ(StateOf(a.id), dino::v1::WORKER_STATE_DEAD);
  EXPECT_EQ(coordinator_->WorkerLeaving(a.id, "again").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(coordinator_->WorkerLeaving("w-999", "").code(), absl::StatusCode::kNotFound);
  TestWorker b = AddWorker();
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_RUNNING);
}

TEST_F(PreemptionTest, LeavingWorkerKilledAfterTheGracePeriodIsStillAPreemption) {
  TestWorker a = AddWorker();
  TestWorker b = AddWorker();
  const std::string job = SubmitNoRestarts(2);
  ASSERT_TRUE(coordinator_->WorkerLeaving(a.id, "SIGTERM").ok());
  // a never reports (SIGKILLed at the end of terminationGracePeriodSeconds) and goes silent.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(4));
    ASSERT_TRUE(coordinator_->Heartbeat(b.id, {}).ok());
    coordinator_->Tick();
  }
  Job got = Get(job);
  EXPECT_EQ(got.state(), dino::v1::JOB_STATE_RESTARTING) << got.DebugString();
  EXPECT_EQ(got.attempts(0).failure_reason(), dino::v1::FAILURE_REASON_PREEMPTED);
  EXPECT_EQ(got.restarts(), 0);
  EXPECT_EQ(StateOf(a.id), dino::v1::WORKER_STATE_DEAD);
}

TEST(CountedRestartsTest, AttemptsAfterAPreemptionAreNotCounted) {
  Job job;
  EXPECT_EQ(CountedRestarts(job), 0);
  job.add_attempts()->set_failure_reason(dino::v1::FAILURE_REASON_WORKER_LOST);
  EXPECT_EQ(CountedRestarts(job), 0);  // The first attempt is never a restart.
  job.add_attempts()->set_failure_reason(dino::v1::FAILURE_REASON_PREEMPTED);
  EXPECT_EQ(CountedRestarts(job), 1);  // Followed WORKER_LOST.
  job.add_attempts()->set_failure_reason(dino::v1::FAILURE_REASON_PREEMPTED);
  EXPECT_EQ(CountedRestarts(job), 1);  // Followed a preemption.
  job.add_attempts();
  EXPECT_EQ(CountedRestarts(job), 1);
}

}  // namespace
}  // namespace dino::server
