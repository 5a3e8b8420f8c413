#include "server/scheduler.h"

#include <algorithm>
#include <map>
#include <set>

namespace dino::server {

SchedulePlan PlanGangs(std::vector<PendingJob> queue, const std::vector<IdleWorker>& idle) {
  std::stable_sort(queue.begin(), queue.end(), [](const PendingJob& a, const PendingJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.submit_time != b.submit_time) return a.submit_time < b.submit_time;
    return a.job_id < b.job_id;
  });
  std::map<dino::v1::DeviceKind, std::vector<std::string>> free;
  for (const IdleWorker& worker : idle) free[worker.device].push_back(worker.worker_id);
  std::set<dino::v1::DeviceKind> reserved;
  SchedulePlan plan;
  for (const PendingJob& job : queue) {
    if (reserved.count(job.device) > 0) continue;
    std::vector<std::string>& pool = free[job.device];
    if (static_cast<int64_t>(pool.size()) < job.world_size) {
      reserved.insert(job.device);
      plan.reserved_for.push_back(job.job_id);
      continue;
    }
    GangPlacement placement;
    placement.job_id = job.job_id;
    placement.worker_ids.assign(pool.begin(), pool.begin() + job.world_size);
    pool.erase(pool.begin(), pool.begin() + job.world_size);
    plan.placements.push_back(std::move(placement));
  }
  return plan;
}

}  // namespace dino::server
