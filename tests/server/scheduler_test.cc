#include "server/scheduler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dino::server {
namespace {

using ::testing::ElementsAre;

PendingJob Job(std::string id, int64_t world, int priority = 0, int64_t submitted = 0,
               dino::v1::DeviceKind device = dino::v1::DEVICE_KIND_CPU) {
  PendingJob job;
  job.job_id = std::move(id);
  job.world_size = world;
  job.priority = priority;
  job.submit_time = absl::FromUnixSeconds(submitted);
  job.device = device;
  return job;
}

std::vector<IdleWorker> Cpus(int n, int first = 1) {
  std::vector<IdleWorker> out;
  for (int i = 0; i < n; ++i)
    out.push_back({"w-" + std::to_string(first + i), dino::v1::DEVICE_KIND_CPU});
  return out;
}

TEST(SchedulerTest, GangGetsAllRanksOrNone) {
  SchedulePlan plan = PlanGangs({Job("a", 3)}, Cpus(2));
  EXPECT_TRUE(plan.placements.empty());
  plan = PlanGangs({Job("a", 3)}, Cpus(3));
  ASSERT_EQ(plan.placements.size(), 1u);
  EXPECT_THAT(plan.placements[0].worker_ids, ElementsAre("w-1", "w-2", "w-3"));
}

TEST(SchedulerTest, PriorityThenSubmissionOrder) {
  SchedulePlan plan =
      PlanGangs({Job("old", 1, 0, 1), Job("new", 1, 0, 2), Job("urgent", 1, 5, 3)}, Cpus(2));
  ASSERT_EQ(plan.placements.size(), 2u);
  EXPECT_EQ(plan.placements[0].job_id, "urgent");
  EXPECT_EQ(plan.placements[1].job_id, "old");
}

TEST(SchedulerTest, LargeJobAtTheHeadReservesWorkersSoSmallJobsCannotStarveIt) {
  // Three idle workers; the head job needs four. The small job behind it must not take them.
  SchedulePlan plan = PlanGangs({Job("big", 4, 0, 1), Job("small", 1, 0, 2)}, Cpus(3));
  EXPECT_TRUE(plan.placements.empty());
  EXPECT_THAT(plan.reserved_for, ElementsAre("big"));
  plan = PlanGangs({Job("big", 4, 0, 1), Job("small", 1, 0, 2)}, Cpus(5));
  ASSERT_EQ(plan.placements.size(), 2u);
  EXPECT_EQ(plan.placements[0].job_id, "big");
}

TEST(SchedulerTest, DeviceKindMustMatchAndReservationsArePerKind) {
  std::vector<IdleWorker> idle = Cpus(1);
  idle.push_back({"g-1", dino::v1::DEVICE_KIND_CUDA});
  SchedulePlan plan =
      PlanGangs({Job("gpu-big", 2, 0, 1, dino::v1::DEVICE_KIND_CUDA),
                 Job("gpu-small", 1, 0, 2, dino::v1::DEVICE_KIND_CUDA), Job("cpu", 1, 0, 3)},
                idle);
  ASSERT_EQ(plan.placements.size(), 1u);
  EXPECT_EQ(plan.placements[0].job_id, "cpu");
  EXPECT_THAT(plan.placements[0].worker_ids, ElementsAre("w-1"));
  plan = PlanGangs({Job("gpu", 1, 0, 1, dino::v1::DEVICE_KIND_CUDA)}, Cpus(4));
  EXPECT_TRUE(plan.placements.empty());
}

std::vector<IdleWorker> Gpus(int n, int first = 1) {
  std::vector<IdleWorker> out;
  for (int i = 0; i < n; ++i)
    out.push_back({"g-" + std::to_string(first + i), dino::v1::DEVICE_KIND_CUDA});
  return out;
}

constexpr dino::v1::DeviceKind kCpu = dino::v1::DEVICE_KIND_CPU;
constexpr dino::v1::DeviceKind kCuda = dino::v1::DEVICE_KIND_CUDA;

TEST(SchedulerTest, NoJobIsPlacedOnAWorkerOfTheOtherKindInAMixedFleet) {
  std::vector<IdleWorker> idle = Gpus(2);
  for (const IdleWorker& w : Cpus(3)) idle.push_back(w);
  SchedulePlan plan = PlanGangs({Job("gpu-2", 2, 0, 1, kCuda), Job("cpu-3", 3, 0, 2),
                                 Job("gpu-1", 1, 0, 3, kCuda), Job("cpu-1", 1, 0, 4)},
                                idle);
  ASSERT_EQ(plan.placements.size(), 2u);
  EXPECT_EQ(plan.placements[0].job_id, "gpu-2");
  EXPECT_THAT(plan.placements[0].worker_ids, ElementsAre("g-1", "g-2"));
  EXPECT_EQ(plan.placements[1].job_id, "cpu-3");
  EXPECT_THAT(plan.placements[1].worker_ids, ElementsAre("w-1", "w-2", "w-3"));
  ASSERT_EQ(plan.waiting.size(), 2u);
  EXPECT_EQ(plan.waiting[0].job_id, "gpu-1");
  EXPECT_EQ(plan.waiting[1].job_id, "cpu-1");
  EXPECT_EQ(plan.idle_left[kCpu], 0);
  EXPECT_EQ(plan.idle_left[kCuda], 0);
  // A CPU job with only CUDA workers idle waits, and so does a CUDA job with only CPU workers.
  plan = PlanGangs({Job("cpu", 1)}, Gpus(4));
  EXPECT_TRUE(plan.placements.empty());
  plan = PlanGangs({Job("gpu", 1, 0, 0, kCuda)}, Cpus(4));
  EXPECT_TRUE(plan.placements.empty());
  ASSERT_EQ(plan.waiting.size(), 1u);
  EXPECT_EQ(plan.waiting[0].behind, "");
}

TEST(SchedulerTest, WaitingJobsKnowWhoHoldsTheirReservation) {
  SchedulePlan plan =
      PlanGangs({Job("big", 4, 0, 1), Job("small", 1, 0, 2), Job("gpu", 1, 0, 3, kCuda)}, Cpus(3));
  ASSERT_EQ(plan.waiting.size(), 3u);
  EXPECT_EQ(plan.waiting[0].job_id, "big");
  EXPECT_EQ(plan.waiting[0].behind, "");
  EXPECT_EQ(plan.waiting[1].job_id, "small");
  EXPECT_EQ(plan.waiting[1].behind, "big");
  EXPECT_EQ(plan.waiting[2].job_id, "gpu");
  EXPECT_EQ(plan.waiting[2].behind, "");
  EXPECT_EQ(plan.idle_left[kCpu], 3);
}

TEST(SchedulerTest, QueuedReasonNamesWhatTheJobNeedsAndWhatTheFleetHas) {
  // Only CPU workers registered, a CUDA job.
  PendingJob gpu = Job("gpu", 1, 0, 0, kCuda);
  SchedulePlan plan = PlanGangs({gpu}, Cpus(3));
  EXPECT_EQ(QueuedReason(gpu, plan.waiting[0], plan, {{kCpu, 3}}),
            "waiting for 1 idle CUDA worker: no CUDA worker is registered (3 CPU workers do not "
            "match)");
  // Too few idle workers of its kind; the other kind is named.
  PendingJob cpu = Job("cpu", 2);
  plan = PlanGangs({cpu}, Cpus(1));
  EXPECT_EQ(QueuedReason(cpu, plan.waiting[0], plan, {{kCpu, 3}}),
            "waiting for 2 idle CPU workers: 1 of 3 registered CPU workers is idle");
  EXPECT_EQ(QueuedReason(cpu, plan.waiting[0], plan, {{kCpu, 3}, {kCuda, 1}}),
            "waiting for 2 idle CPU workers: 1 of 3 registered CPU workers is idle (1 CUDA worker "
            "does not match)");
  plan = PlanGangs({cpu}, {});
  EXPECT_EQ(QueuedReason(cpu, plan.waiting[0], plan, {{kCpu, 2}, {kCuda, 0}}),
            "waiting for 2 idle CPU workers: 0 of 2 registered CPU workers are idle");
  // More than the fleet of its kind: it cannot form, and says so.
  EXPECT_EQ(QueuedReason(cpu, plan.waiting[0], plan, {{kCpu, 1}, {kCuda, 0}}),
            "waiting for 2 idle CPU workers: only 1 CPU worker is registered, so it holds none "
            "until more register");
  plan = PlanGangs({cpu}, {});
  EXPECT_EQ(QueuedReason(cpu, plan.waiting[0], plan, {}),
            "waiting for 2 idle CPU workers: no CPU worker is registered");
  // Behind a reservation.
  PendingJob big = Job("big", 4, 0, 1);
  PendingJob small = Job("small", 1, 0, 2);
  plan = PlanGangs({big, small}, Cpus(3));
  EXPECT_EQ(QueuedReason(big, plan.waiting[0], plan, {{kCpu, 5}}),
            "waiting for 4 idle CPU workers: 3 of 5 registered CPU workers are idle");
  EXPECT_EQ(QueuedReason(small, plan.waiting[1], plan, {{kCpu, 5}}),
            "waiting for 1 idle CPU worker behind big, which is ahead in the queue and holds the "
            "idle CPU workers (3 of 5 registered are idle)");
}

TEST(SchedulerTest, AJobThatMayNotReserveWaitsWithoutBlockingTheJobsBehindIt) {
  PendingJob big = Job("big", 4, 0, 1);
  big.may_reserve = false;
  PendingJob small = Job("small", 1, 0, 2);
  SchedulePlan plan = PlanGangs({big, small}, Cpus(3));
  EXPECT_TRUE(plan.reserved_for.empty());
  ASSERT_EQ(plan.placements.size(), 1u);
  EXPECT_EQ(plan.placements[0].job_id, "small");
  ASSERT_EQ(plan.waiting.size(), 1u);
  EXPECT_EQ(plan.waiting[0].job_id, "big");
  EXPECT_EQ(plan.waiting[0].behind, "");
  EXPECT_EQ(QueuedReason(big, plan.waiting[0], plan, {{kCpu, 5}}),
            "waiting for 4 idle CPU workers: 2 of 5 registered CPU workers are idle; it held them "
            "for --max-reservation-hold, so smaller jobs may use them for a while");
  // Enough idle workers: it still starts first, in queue order.
  plan = PlanGangs({big, small}, Cpus(5));
  ASSERT_EQ(plan.placements.size(), 2u);
  EXPECT_EQ(plan.placements[0].job_id, "big");
}

}  // namespace
}  // namespace dino::server
