// Gang scheduling, as a pure function of the queue and the idle workers, so its policy is tested
// without threads, clocks or RPCs.
//
// Policy:
// - Gangs only: a job gets all `world_size` workers at once, or none.
// - A worker's device kind must match the job's.
// - Order: higher priority first, then earlier submission, then id.
// - Reservation: the first job (in that order) that does not fit reserves every idle worker of its
//   device kind, so smaller jobs behind it cannot starve it; jobs of other device kinds still run.
//   Only a job with `may_reserve` does: the coordinator clears it for a gang larger than the
//   registered workers of its kind (it could hold them for ever) and for a job whose hold has
//   lasted CoordinatorOptions::max_reservation_hold. Such a job waits without blocking the others.
// - Ranks follow the order of the idle workers given (the caller passes them sorted by id).
//
// - Every job that does not start is listed in `waiting`, and QueuedReason says why in words for
//   Job.queued_reason, from the plan and the fleet.
//
// Thread-safety: stateless. Failure: none; a job that cannot run is simply not in the result.
#pragma once

#include <cstdint>
#include <map>
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
  // Whether it may hold the idle workers of its kind while it does not fit (see Policy).
  bool may_reserve = true;
};

struct IdleWorker {
  std::string worker_id;
  dino::v1::DeviceKind device = dino::v1::DEVICE_KIND_CPU;
};

struct GangPlacement {
  std::string job_id;
  std::vector<std::string> worker_ids;  // Index = rank.
};

// A job the plan does not start.
struct WaitingJob {
  std::string job_id;
  // The job ahead of it that reserved the idle workers of its device kind; empty when it is that
  // job itself (fewer idle workers of its kind than its world_size).
  std::string behind;
};

struct SchedulePlan {
  std::vector<GangPlacement> placements;
  // The job holding a reservation per device kind, if any (for logs and tests).
  std::vector<std::string> reserved_for;
  // In queue order.
  std::vector<WaitingJob> waiting;
  // Per device kind: the idle workers that no placement took.
  std::map<dino::v1::DeviceKind, int64_t> idle_left;
};

SchedulePlan PlanGangs(std::vector<PendingJob> queue, const std::vector<IdleWorker>& idle);

// The workers of each device kind that are registered and not dead (busy, idle, leaving or not yet
// connected); a kind with none may be absent.
using RegisteredWorkers = std::map<dino::v1::DeviceKind, int64_t>;

// Why `job` waits after `plan`, for people, e.g.
//   waiting for 2 idle CPU workers: 1 of 3 registered CPU workers is idle
//   waiting for 1 idle CUDA worker: no CUDA worker is registered (3 CPU workers do not match)
//   waiting for 4 idle CPU workers: only 2 CPU workers are registered, so it holds none until
//   more register
//   waiting for 1 idle CPU worker behind job-4, which is ahead in the queue and holds the idle
//   CPU workers (3 of 5 registered are idle)
std::string QueuedReason(const PendingJob& job, const WaitingJob& waiting, const SchedulePlan& plan,
                         const RegisteredWorkers& registered);

}  // namespace dino::server
