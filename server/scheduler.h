// Gang scheduling, as a pure function of the queue and the idle workers, so its policy is tested
// without threads, clocks or RPCs.
//
// Policy:
// - Gangs only: a job gets all `world_size` workers at once, or none.
// - A worker's device kind must match the job's.
// - Order: higher priority first, then earlier submission, then id.
// - Reservation: the first job (in that order) that does not fit reserves every idle worker of its
//   device kind, so smaller jobs behind it cannot starve it; jobs of other device kinds still run.
// - Ranks follow the order of the idle workers given (the caller passes them sorted by id).
//
// Thread-safety: stateless. Failure: none; a job that cannot run is simply not in the result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "dino/v1/job.pb.h"

namespace dino::server {

struct PendingJob {
  std::string job_id;
  int32_t priority = 0;
  absl::Time submit_time;
  int64_t world_size = 1;
  dino::v1::DeviceKind device = dino::v1::DEVICE_KIND_CPU;
};

struct IdleWorker {
  std::string worker_id;
  dino::v1::DeviceKind device = dino::v1::DEVICE_KIND_CPU;
};

struct GangPlacement {
  std::string job_id;
  std::vector<std::string> worker_ids;  // Index = rank.
};

struct SchedulePlan {
  std::vector<GangPlacement> placements;
  // The job holding a reservation per device kind, if any (for logs and tests).
  std::vector<std::string> reserved_for;
};

SchedulePlan PlanGangs(std::vector<PendingJob> queue, const std::vector<IdleWorker>& idle);

}  // namespace dino::server
