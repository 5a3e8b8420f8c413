// The Coordinator's state machine with a simulated clock: scheduling, liveness, restarts from the
// latest checkpoint, retry policy, cancel, idempotency, collapse and persistence. No sleeping.
#include "server/coordinator.h"

#include <memory>
#include <string>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator_fixture.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using dino::v1::JobState;
using testing::RecordingChannel;
using testing::RecordingSink;

class CoordinatorTest : public testing::CoordinatorFixture {
 protected:
  JobState State(const std::string& job_id) { return coordinator_->GetJob(job_id)->state(); }

  // Heartbeats from every listed worker, then advance the clock.
  void Beat(const std::vector<TestWorker>& workers) {
    for (const auto& w : workers) ASSERT_TRUE(coordinator_->Heartbeat(w.id, {}).ok());
  }
};

TEST_F(CoordinatorTest, GangIsAssignedWithRanksAndRendezvous) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec(2));
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_QUEUED);  // One worker is not a gang of two.
  EXPECT_TRUE(a.channel->Take().empty());
  TestWorker b = AddWorker();
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  auto to_a = a.channel->Take();
  auto to_b = b.channel->Take();
  ASSERT_EQ(to_a.size(), 1u);
  ASSERT_EQ(to_b.size(), 1u);
  const auto& assignment_a = to_a[0].assignment();
  const auto& assignment_b = to_b[0].assignment();
  EXPECT_EQ(assignment_a.rank(), 0);
  EXPECT_EQ(assignment_b.rank(), 1);
  EXPECT_EQ(assignment_a.world_size(), 2);
  EXPECT_EQ(assignment_b.master_address(), assignment_a.master_address());
  EXPECT_EQ(assignment_a.attempt(), 1);
  EXPECT_EQ(assignment_a.store_prefix(), job + "/attempt-1");
  EXPECT_FALSE(assignment_a.has_resume_checkpoint());
  EXPECT_EQ(assignment_a.spec().optim().batch_size_per_rank(), 64);  // Defaults applied.
  auto workers = coordinator_->ListWorkers(false);
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].state(), dino::v1::WORKER_STATE_BUSY);
  EXPECT_EQ(workers[0].job_id(), job);
}

TEST_F(CoordinatorTest, DeviceKindMustMatch) {
  AddWorker("cpu");
  auto spec = testing::TinySpec();
  spec.mutable_resources()->set_device(dino::v1::DEVICE_KIND_CUDA);
  const std::string job = Submit(spec);
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_QUEUED);
  AddWorker("cuda:0");
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
}

TEST_F(CoordinatorTest, SilentWorkerIsDeadAndTheJobRestartsFromTheLatestCheckpoint) {
  TestWorker a = AddWorker();
  TestWorker b = AddWorker();
  const std::string job = Submit(testing::TinySpec(2));
  a.channel->Take();
  b.channel->Take();
  auto checkpoint = UploadCheckpoint(job, 1, a, 40, "weights at step 40");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();

  // b keeps heartbeating, a goes silent.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(4));
    Beat({b});
    coordinator_->Tick();
  }
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RESTARTING);
  auto to_b = b.channel->Take();
  ASSERT_EQ(to_b.size(), 1u);
  EXPECT_TRUE(to_b[0].has_abort());
  EXPECT_TRUE(a.channel->closed());
  auto attempt1 = coordinator_->GetJob(job)->attempts(0);
  EXPECT_EQ(attempt1.state(), dino::v1::ATTEMPT_STATE_FAILED);
  EXPECT_EQ(attempt1.failure_reason(), dino::v1::FAILURE_REASON_WORKER_LOST);

  // A replacement joins: attempt 2 resumes from step 40 on b and c.
  TestWorker c = AddWorker();
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  auto to_c = c.channel->Take();
  ASSERT_EQ(to_c.size(), 1u);
  EXPECT_EQ(to_c[0].assignment().attempt(), 2);
  EXPECT_EQ(to_c[0].assignment().resume_checkpoint().step(), 40);
  EXPECT_EQ(to_c[0].assignment().resume_checkpoint().id(), checkpoint->id());
  auto got = coordinator_->GetJob(job);
  EXPECT_EQ(got->restarts(), 1);
  EXPECT_EQ(got->attempts(1).resume_step(), 40);

  // Reports about the dead attempt are refused.
  dino::v1::ReportProgressRequest stale;
  stale.set_worker_id(b.id);
  stale.set_job_id(job);
  stale.set_attempt(1);
  stale.add_stats()->set_step(41);
  EXPECT_EQ(coordinator_->ReportProgress(stale).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The dead worker must register again and gets a new identity.
  EXPECT_EQ(coordinator_->Heartbeat(a.id, {}).code(), absl::StatusCode::kNotFound);
  TestWorker a2 = AddWorker("cpu", a.id);
  EXPECT_NE(a2.id, a.id);
}

TEST_F(CoordinatorTest, RestartBudgetExhaustedFailsTheJob) {
  auto spec = testing::TinySpec();
  spec.set_max_restarts(1);
  const std::string job = Submit(spec);
  TestWorker a = AddWorker();
  ASSERT_TRUE(Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_FAILED,
                     dino::v1::FAILURE_REASON_COLLECTIVE_ABORT)
                  .ok());
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);  // Attempt 2, on the same idle worker.
  ASSERT_TRUE(Result(job, 2, a, 0, dino::v1::ATTEMPT_OUTCOME_FAILED,
                     dino::v1::FAILURE_REASON_COLLECTIVE_ABORT)
                  .ok());
  auto got = coordinator_->GetJob(job);
  EXPECT_EQ(got->state(), dino::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got->failure_reason(), dino::v1::FAILURE_REASON_COLLECTIVE_ABORT);
  EXPECT_THAT(got->message(), ::testing::HasSubstr("max_restarts 1 exhausted"));
  EXPECT_EQ(got->attempts_size(), 2);
}

// A rank whose attempt failed elsewhere (a peer's collective gave up on it) may still be inside it,
// or stopped there: the next attempt waits until it says it dropped the old one, instead of
// placing a new gang on it that would fail its rendezvous and use up the job's restarts.
TEST_F(CoordinatorTest, ARankStillInsideAFailedAttemptGetsNoNewOneUntilItDropsIt) {
  TestWorker a = AddWorker();
  TestWorker b = AddWorker();
  const std::string job = Submit(testing::TinySpec(2));
  ASSERT_TRUE(Result(job, 1, b, 1, dino::v1::ATTEMPT_OUTCOME_FAILED,
                     dino::v1::FAILURE_REASON_COLLECTIVE_ABORT)
                  .ok());
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RESTARTING);
  dino::v1::Heartbeat still_inside;
  still_inside.mutable_running()->set_job_id(job);
  still_inside.mutable_running()->set_attempt(1);
  ASSERT_TRUE(coordinator_->Heartbeat(a.id, still_inside).ok());
  ASSERT_TRUE(coordinator_->Heartbeat(b.id, {}).ok());
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RESTARTING);
  ASSERT_TRUE(coordinator_->Heartbeat(a.id, {}).ok());  // Dropped it.
  auto got = coordinator_->GetJob(job);
  EXPECT_EQ(got->state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got->attempts_size(), 2);
}

TEST_F(CoordinatorTest, BadDatasetIsNotRetried) {
  const std::string job = Submit(testing::TinySpec());
  TestWorker a = AddWorker();
  ASSERT_TRUE(
      Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_FAILED, dino::v1::FAILURE_REASON_BAD_DATASET)
          .ok());
  auto got = coordinator_->GetJob(job);
  EXPECT_EQ(got->state(), dino::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got->failure_reason(), dino::v1::FAILURE_REASON_BAD_DATASET);
  EXPECT_EQ(got->restarts(), 0);
  EXPECT_EQ(coordinator_->ListWorkers(false)[0].state(), dino::v1::WORKER_STATE_IDLE);
}

TEST_F(CoordinatorTest, SuccessFromRankZeroFinishesTheJob) {
  TestWorker a = AddWorker();
  TestWorker b = AddWorker();
  const std::string job = Submit(testing::TinySpec(2));
  ASSERT_TRUE(Result(job, 1, b, 1, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_SUCCEEDED);
  // A late duplicate is harmless.
  EXPECT_TRUE(Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  for (const auto& w : coordinator_->ListWorkers(false)) {
    EXPECT_EQ(w.state(), dino::v1::WORKER_STATE_IDLE);
  }
}

TEST_F(CoordinatorTest, CancelTellsTheRanksAndFreesThem) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  a.channel->Take();
  auto cancelled = coordinator_->CancelJob(job, "");
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), dino::v1::JOB_STATE_CANCELLED);
  auto to_a = a.channel->Take();
  ASSERT_EQ(to_a.size(), 1u);
  EXPECT_TRUE(to_a[0].has_cancel());
  // The worker takes the next job once it says it dropped the cancelled attempt.
  const std::string next = Submit(testing::TinySpec());
  EXPECT_EQ(State(next), dino::v1::JOB_STATE_QUEUED);
  ASSERT_TRUE(coordinator_->Heartbeat(a.id, {}).ok());
  EXPECT_EQ(State(next), dino::v1::JOB_STATE_RUNNING);
  // Cancelling an ended job returns it unchanged; an unknown one is NOT_FOUND.
  EXPECT_EQ(coordinator_->CancelJob(job, "")->state(), dino::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(coordinator_->CancelJob("job-404", "").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, SubmitIsIdempotentByRequestId) {
  auto spec = testing::TinySpec();
  spec.set_request_id("req-1");
  auto first = coordinator_->SubmitJob(spec);
  auto second = coordinator_->SubmitJob(spec);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_TRUE(first->created());
  EXPECT_FALSE(second->created());
  EXPECT_EQ(first->job().id(), second->job().id());
  EXPECT_EQ(coordinator_->ListJobs({})->jobs_size(), 1);
  Open();  // Also after a restart.
  auto third = coordinator_->SubmitJob(spec);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(third->created());
  EXPECT_EQ(third->job().id(), first->job().id());
}

TEST_F(CoordinatorTest, RestartKeepsJobsEventsAndCheckpointsAndReconcilesWorkers) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  ASSERT_TRUE(UploadCheckpoint(job, 1, a, 10, "ten").ok());
  const int64_t events_before = coordinator_->GetJob(job)->last_event_index();
  const std::string queued = Submit(testing::TinySpec());

  Open();  // The coordinator is killed and restarted on the same data dir.
  auto got = coordinator_->GetJob(job);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got->last_event_index(), events_before);
  EXPECT_EQ(State(queued), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(coordinator_->ListCheckpoints(job)->size(), 1u);
  RecordingSink sink;
  auto token = coordinator_->Watch(job, 0, false, &sink);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(static_cast<int64_t>(sink.events().size()), events_before);

  // The worker comes back within the timeout, still running its attempt: it keeps it.
  dino::v1::RegisterRequest again;
  again.set_device("cpu");
  again.set_rendezvous_address("127.0.0.1:1");
  again.set_previous_worker_id(a.id);
  again.mutable_running()->set_job_id(job);
  again.mutable_running()->set_attempt(1);
  auto response = coordinator_->RegisterWorker(again);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->worker_id(), a.id);
  EXPECT_TRUE(response->keep_running());
  // Its new stream gets the current assignment again (the old one may have been lost).
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(coordinator_->AttachWorker(a.id, channel).ok());
  auto resent = channel->Take();
  ASSERT_EQ(resent.size(), 1u);
  EXPECT_EQ(resent[0].assignment().attempt(), 1);
  EXPECT_EQ(resent[0].assignment().resume_checkpoint().step(), 0);
  clock_.Advance(absl::Seconds(10));
  coordinator_->Tick();
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  coordinator_->Unwatch(*token);
}

TEST_F(CoordinatorTest, RunningJobWhoseWorkersNeverReturnRestartsAfterTheTimeout) {
  TestWorker a = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  Open();
  clock_.Advance(absl::Seconds(16));
  coordinator_->Tick();
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RESTARTING);
  TestWorker b = AddWorker();
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(coordinator_->GetJob(job)->attempts(1).ranks(0).worker_id(), b.id);
}

TEST_F(CoordinatorTest, CollapseWithPolicyFailFailsTheJobWithoutRetry) {
  auto spec = testing::TinySpec();
  spec.mutable_collapse()->set_policy(dino::v1::COLLAPSE_POLICY_FAIL);
  spec.mutable_collapse()->set_consecutive_reports(3);
  const std::string job = Submit(spec);
  TestWorker a = AddWorker();
  dino::v1::ReportProgressRequest progress = ProgressFrom(a, job);
  for (int step = 1; step <= 3; ++step) {
    auto* s = progress.add_stats();
    s->set_step(step);
    s->set_kl(0.0);
    s->set_batch_mean_entropy(2.0);
  }
  auto response = coordinator_->ReportProgress(progress);
  ASSERT_TRUE(response.ok());
  EXPECT_TRUE(response->cancel_requested());
  auto got = coordinator_->GetJob(job);
  EXPECT_EQ(got->state(), dino::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got->failure_reason(), dino::v1::FAILURE_REASON_COLLAPSE);
  EXPECT_TRUE(got->collapse_flagged());
  ASSERT_EQ(got->collapse_warnings_size(), 1);
  EXPECT_EQ(got->collapse_warnings(0).metric(), "kl");
}

TEST_F(CoordinatorTest, MetricsSeriesAreStoredAndDownsampled) {
  const std::string job = Submit(testing::TinySpec());
  TestWorker a = AddWorker();
  dino::v1::ReportProgressRequest progress = ProgressFrom(a, job);
  for (int step = 0; step < 100; ++step) {
    auto* s = progress.add_stats();
    s->set_step(step);
    s->set_loss(10.0 - step * 0.05);
    s->set_kl(0.5);
    s->set_batch_mean_entropy(3);
  }
  ASSERT_TRUE(coordinator_->ReportProgress(progress).ok());
  dino::v1::GetJobMetricsRequest request;
  request.set_job_id(job);
  request.add_series("loss");
  request.set_max_points(10);
  auto metrics = coordinator_->GetJobMetrics(request);
  ASSERT_TRUE(metrics.ok());
  ASSERT_EQ(metrics->series_size(), 1);
  const auto& loss = metrics->series(0);
  ASSERT_EQ(loss.points_size(), 10);
  EXPECT_EQ(loss.points(0).step(), 0);
  EXPECT_EQ(loss.points(9).step(), 99);
  EXPECT_DOUBLE_EQ(loss.points(9).value(), 10.0 - 99 * 0.05);
  request.set_series(0, "nonsense");
  EXPECT_EQ(coordinator_->GetJobMetrics(request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, ListJobsFiltersAndPaginates) {
  for (int i = 0; i < 5; ++i) {
    auto spec = testing::TinySpec();
    (*spec.mutable_labels())["team"] = i % 2 == 0 ? "vision" : "audio";
    Submit(spec);
  }
  dino::v1::ListJobsRequest request;
  request.set_page_size(2);
  auto page1 = coordinator_->ListJobs(request);
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->jobs_size(), 2);
  EXPECT_EQ(page1->jobs(0).id(), "job-5");  // Newest first.
  request.set_page_token(page1->next_page_token());
  auto page2 = coordinator_->ListJobs(request);
  ASSERT_EQ(page2->jobs_size(), 2);
  EXPECT_EQ(page2->jobs(0).id(), "job-3");
  dino::v1::ListJobsRequest filtered;
  (*filtered.mutable_labels())["team"] = "vision";
  filtered.add_states(dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(coordinator_->ListJobs(filtered)->jobs_size(), 3);
  filtered.set_page_token("garbage");
  EXPECT_EQ(coordinator_->ListJobs(filtered).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dino::server
