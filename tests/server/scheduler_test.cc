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

}  // namespace
}  // namespace dino::server
