// The Coordinator's scheduling passes against a fleet: a job runs only on workers of its device
// kind, through any number of passes (Tick on a simulated clock), and a waiting job says why in
// Job.queued_reason, which is gone once it leaves the queue.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/server/coordinator_fixture.h"

namespace dino::server {
namespace {

using ::testing::IsEmpty;

class CoordinatorSchedulingTest : public testing::CoordinatorFixture {
 protected:
  dino::v1::Job Get(const std::string& job_id) {
    absl::StatusOr<dino::v1::Job> job = coordinator_->GetJob(job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : dino::v1::Job();
  }

  static dino::v1::JobSpec CudaSpec(int world_size = 1) {
    dino::v1::JobSpec spec = testing::TinySpec(world_size);
    spec.mutable_resources()->set_device(dino::v1::DEVICE_KIND_CUDA);
    return spec;
  }

  // `passes` scheduling passes a second apart, every worker heartbeating so none is declared dead.
  void Passes(int passes, const std::vector<TestWorker>& alive) {
    for (int i = 0; i < passes; ++i) {
      clock_.Advance(absl::Seconds(1));
      for (const TestWorker& w : alive) ASSERT_TRUE(coordinator_->Heartbeat(w.id, {}).ok());
      coordinator_->Tick();
    }
  }

  // The worker ids of the job's current attempt, by rank.
  std::vector<std::string> Gang(const std::string& job_id) {
    std::vector<std::string> ids;
    const dino::v1::Job job = Get(job_id);
    if (job.attempts_size() == 0) return ids;
    for (const auto& rank : job.attempts(job.attempts_size() - 1).ranks()) {
      ids.push_back(rank.worker_id());
    }
    return ids;
  }
};

TEST_F(CoordinatorSchedulingTest, ACudaJobWithOnlyCpuWorkersIdleStaysQueuedThroughEveryPass) {
  const std::vector<TestWorker> cpus = {AddWorker("cpu"), AddWorker("cpu"), AddWorker("cpu")};
  const std::string job = Submit(CudaSpec());
  Passes(30, cpus);
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(Get(job).queued_reason(),
            "waiting for 1 idle CUDA worker: no CUDA worker is registered (3 CPU workers do not "
            "match)");
  for (const TestWorker& w : cpus) EXPECT_THAT(w.channel->Take(), IsEmpty());

  // "cuda:1" is a CUDA worker like "cuda:0".
  const TestWorker gpu = AddWorker("cuda:1");
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Get(job).queued_reason(), "");
  EXPECT_EQ(Gang(job), std::vector<std::string>{gpu.id});
  EXPECT_EQ(gpu.channel->Take().size(), 1u);
  for (const TestWorker& w : cpus) EXPECT_THAT(w.channel->Take(), IsEmpty());
  for (const auto& info : coordinator_->ListWorkers(false)) {
    EXPECT_EQ(info.state(),
              info.id() == gpu.id ? dino::v1::WORKER_STATE_BUSY : dino::v1::WORKER_STATE_IDLE)
        << info.id();
  }
}

TEST_F(CoordinatorSchedulingTest, ACpuJobIsNeverGivenToACudaWorker) {
  const std::vector<TestWorker> gpus = {AddWorker("cuda:0"), AddWorker("cuda")};
  const std::string job = Submit(testing::TinySpec());
  Passes(5, gpus);
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(Get(job).queued_reason(),
            "waiting for 1 idle CPU worker: no CPU worker is registered (2 CUDA workers do not "
            "match)");
  for (const TestWorker& w : gpus) EXPECT_THAT(w.channel->Take(), IsEmpty());
  const TestWorker cpu = AddWorker("cpu");
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Gang(job), std::vector<std::string>{cpu.id});
}

TEST_F(CoordinatorSchedulingTest, AMixedFleetGivesEachJobWorkersOfItsKind) {
  const TestWorker cpu_a = AddWorker("cpu");
  const TestWorker gpu_a = AddWorker("cuda:0");
  const TestWorker cpu_b = AddWorker("cpu");
  const TestWorker gpu_b = AddWorker("cuda:1");
  const std::string cuda_pair = Submit(CudaSpec(2));
  const std::string cpu_pair = Submit(testing::TinySpec(2));
  const std::string cuda_one = Submit(CudaSpec(1));
  EXPECT_EQ(Gang(cuda_pair), (std::vector<std::string>{gpu_a.id, gpu_b.id}));
  EXPECT_EQ(Gang(cpu_pair), (std::vector<std::string>{cpu_a.id, cpu_b.id}));
  EXPECT_EQ(Get(cuda_one).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(Get(cuda_one).queued_reason(),
            "waiting for 1 idle CUDA worker: 0 of 2 registered CUDA workers are idle (2 CPU "
            "workers do not match)");
  // The CPU gang finishing frees CPU workers only: the CUDA job still waits.
  ASSERT_TRUE(Result(cpu_pair, 1, cpu_a, 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  Passes(3, {cpu_a, gpu_a, cpu_b, gpu_b});
  EXPECT_EQ(Get(cuda_one).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(Get(cuda_one).queued_reason(),
            "waiting for 1 idle CUDA worker: 0 of 2 registered CUDA workers are idle (2 CPU "
            "workers do not match)");
  // The CUDA gang finishing frees one for it.
  ASSERT_TRUE(Result(cuda_pair, 1, gpu_a, 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(Get(cuda_one).state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Gang(cuda_one), std::vector<std::string>{gpu_a.id});
  EXPECT_EQ(Get(cuda_one).queued_reason(), "");
}

TEST_F(CoordinatorSchedulingTest, TheReasonFollowsTheFleetAndIsListedAndClearedOnCancel) {
  const TestWorker a = AddWorker("cpu");
  const TestWorker b = AddWorker("cpu");
  const std::string first = Submit(testing::TinySpec(1));
  ASSERT_EQ(Get(first).state(), dino::v1::JOB_STATE_RUNNING);
  const std::string job = Submit(testing::TinySpec(2));
  EXPECT_EQ(Get(job).queued_reason(),
            "waiting for 2 idle CPU workers: 1 of 2 registered CPU workers is idle");
  // A job behind it waits for its reservation.
  const std::string behind = Submit(testing::TinySpec(1));
  EXPECT_EQ(Get(behind).queued_reason(),
            "waiting for 1 idle CPU worker behind " + job +
                ", which is ahead in the queue and holds the idle CPU workers (1 of 2 registered "
                "is idle)");
  absl::StatusOr<dino::v1::ListJobsResponse> list = coordinator_->ListJobs({});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->jobs_size(), 3);
  EXPECT_EQ(list->jobs(1).queued_reason(), Get(job).queued_reason());

  // The worker goes silent: dead workers are not counted.
  clock_.Advance(absl::Seconds(16));
  coordinator_->Tick();
  EXPECT_EQ(Get(job).queued_reason(),
            "waiting for 2 idle CPU workers: no CPU worker is registered");

  ASSERT_TRUE(coordinator_->CancelJob(job, "").ok());
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(Get(job).queued_reason(), "");
  // The job behind it now waits on its own account.
  EXPECT_EQ(Get(behind).queued_reason(),
            "waiting for 1 idle CPU worker: no CPU worker is registered");
  (void)a;
  (void)b;
}

TEST_F(CoordinatorSchedulingTest, ARestartingJobSaysWhyItWaitsAndTheReasonIsNotStored) {
  const TestWorker a = AddWorker("cpu");
  const std::string job = Submit(testing::TinySpec(1));
  ASSERT_EQ(Get(job).state(), dino::v1::JOB_STATE_RUNNING);
  // The worker is lost: the job waits for another to restart on.
  clock_.Advance(absl::Seconds(16));
  coordinator_->Tick();
  EXPECT_EQ(Get(job).state(), dino::v1::JOB_STATE_RESTARTING);
  EXPECT_EQ(Get(job).queued_reason(), "waiting for 1 idle CPU worker: no CPU worker is registered");
  // A restarted coordinator has not yet scheduled: it shows no stale reason from the store.
  Open();
  EXPECT_EQ(Get(job).queued_reason(), "");
  coordinator_->Tick();
  EXPECT_EQ(Get(job).queued_reason(), "waiting for 1 idle CPU worker: no CPU worker is registered");
  (void)a;
}

TEST_F(CoordinatorSchedulingTest, OnlyAnAdminSetsAPriorityAboveTheSubmitterCap) {
  dino::v1::JobSpec spec = testing::TinySpec(1);
  spec.set_priority(5);
  absl::StatusOr<dino::v1::SubmitJobResponse> refused =
      coordinator_->SubmitJob(spec, JobCaller{"sam", false});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("--max-submitter-priority=0"));
  EXPECT_TRUE(coordinator_->SubmitJob(spec, JobCaller{"root", true}).ok());
  spec.set_priority(-5);  // Lowering one's own priority is always allowed.
  EXPECT_TRUE(coordinator_->SubmitJob(spec, JobCaller{"sam", false}).ok());
  spec.clear_priority();  // The default priority is within the default cap.
  EXPECT_TRUE(coordinator_->SubmitJob(spec, JobCaller{"sam", false}).ok());

  options_.max_submitter_priority = 10;
  Open();
  spec.set_priority(10);
  EXPECT_TRUE(coordinator_->SubmitJob(spec, JobCaller{"sam", false}).ok());
  spec.set_priority(11);
  EXPECT_EQ(coordinator_->SubmitJob(spec, JobCaller{"sam", false}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CoordinatorSchedulingTest, AGangLargerThanTheFleetNeverHoldsItAndIsRefusedOnceItSettled) {
  // A fresh coordinator: accepted, and it says why it waits.
  const std::string early = Submit(testing::TinySpec(3));
  EXPECT_EQ(Get(early).queued_reason(),
            "waiting for 3 idle CPU workers: no CPU worker is registered");
  const TestWorker a = AddWorker("cpu");
  const TestWorker b = AddWorker("cpu");
  // The fleet is still coming up: accepted too, and it holds no workers, so a small job runs.
  const std::string starting = Submit(testing::TinySpec(3));
  EXPECT_EQ(Get(starting).queued_reason(),
            "waiting for 3 idle CPU workers: only 2 CPU workers are registered, so it holds none "
            "until more register");
  const std::string small = Submit(testing::TinySpec(1));
  EXPECT_EQ(Get(small).state(), dino::v1::JOB_STATE_RUNNING);

  // Once the fleet has been up for a liveness timeout, such a gang is refused at once.
  Passes(15, {a, b});
  absl::StatusOr<dino::v1::SubmitJobResponse> refused =
      coordinator_->SubmitJob(testing::TinySpec(3));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("resources.world_size 3 is more than the 2 registered workers "
                                   "of CPU"));
  EXPECT_TRUE(coordinator_->SubmitJob(testing::TinySpec(2)).ok());
  // Another device kind with no worker at all is still accepted.
  EXPECT_TRUE(coordinator_->SubmitJob(CudaSpec(4)).ok());
}

TEST_F(CoordinatorSchedulingTest, AHoldOnIdleWorkersIsReleasedAfterMaxReservationHold) {
  options_.max_reservation_hold = absl::Seconds(60);
  Open();
  const TestWorker a = AddWorker("cpu");
  const TestWorker b = AddWorker("cpu");
  const TestWorker c = AddWorker("cpu");
  const std::vector<TestWorker> all = {a, b, c};
  const std::string running = Submit(testing::TinySpec(2));
  ASSERT_EQ(Get(running).state(), dino::v1::JOB_STATE_RUNNING);
  // The gang of three cannot form while the pair runs: it holds the one idle worker.
  const std::string big = Submit(testing::TinySpec(3));
  const std::string small = Submit(testing::TinySpec(1));
  Passes(59, all);
  EXPECT_EQ(Get(small).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_THAT(Get(small).queued_reason(), ::testing::HasSubstr("behind " + big));

  // The hold has lasted max_reservation_hold: the small job gets the idle worker.
  Passes(1, all);
  ASSERT_EQ(Get(small).state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Get(big).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_THAT(Get(big).queued_reason(), ::testing::HasSubstr("--max-reservation-hold"));
  // While the big job is off, another small one may run too once a worker frees up.
  auto rank0 = [&](const std::string& job) {
    for (const TestWorker& w : all) {
      if (w.id == Gang(job)[0]) return w;
    }
    ADD_FAILURE() << job << " runs on no known worker";
    return a;
  };
  ASSERT_TRUE(Result(small, 1, rank0(small), 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  const std::string second_small = Submit(testing::TinySpec(1));
  ASSERT_EQ(Get(second_small).state(), dino::v1::JOB_STATE_RUNNING);

  // As long again, and the big job holds the idle workers anew.
  ASSERT_TRUE(
      Result(second_small, 1, rank0(second_small), 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  Passes(60, all);
  const std::string third_small = Submit(testing::TinySpec(1));
  EXPECT_EQ(Get(third_small).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_THAT(Get(third_small).queued_reason(), ::testing::HasSubstr("behind " + big));
}

}  // namespace
}  // namespace dino::server
