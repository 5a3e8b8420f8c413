#include "server/scheduler.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace dino::server {
namespace {

// "CPU", "CUDA".
std::string KindName(dino::v1::DeviceKind kind) {
  return std::string(absl::StripPrefix(dino::v1::DeviceKind_Name(kind), "DEVICE_KIND_"));
}

// "1 CUDA worker", "3 idle CPU workers".
std::string Workers(int64_t n, absl::string_view adjective, dino::v1::DeviceKind kind) {
  return absl::StrCat(n, " ", adjective, adjective.empty() ? "" : " ", KindName(kind),
                      n == 1 ? " worker" : " workers");
}

int64_t CountOf(const std::map<dino::v1::DeviceKind, int64_t>& counts, dino::v1::DeviceKind kind) {
  auto it = counts.find(kind);
  return it == counts.end() ? 0 : it->second;
}

}  // namespace

SchedulePlan PlanGangs(std::vector<PendingJob> queue, const std::vector<IdleWorker>& idle) {
  std::stable_sort(queue.begin(), queue.end(), [](const PendingJob& a, const PendingJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.submit_time != b.submit_time) return a.submit_time < b.submit_time;
    return a.job_id < b.job_id;
  });
  std::map<dino::v1::DeviceKind, std::vector<std::string>> free;
  for (const IdleWorker& worker : idle) free[worker.device].push_back(worker.worker_id);
  std::map<dino::v1::DeviceKind, std::string> reserved;  // Kind -> the job holding it.
  SchedulePlan plan;
  for (const PendingJob& job : queue) {
    auto holder = reserved.find(job.device);
    if (holder != reserved.end()) {
      plan.waiting.push_back({job.job_id, holder->second});
      continue;
    }
    std::vector<std::string>& pool = free[job.device];
    if (static_cast<int64_t>(pool.size()) < job.world_size) {
      if (job.may_reserve) {
        reserved[job.device] = job.job_id;
        plan.reserved_for.push_back(job.job_id);
      }
      plan.waiting.push_back({job.job_id, ""});
      continue;
    }
    GangPlacement placement;
    placement.job_id = job.job_id;
    placement.worker_ids.assign(pool.begin(), pool.begin() + job.world_size);
    pool.erase(pool.begin(), pool.begin() + job.world_size);
    plan.placements.push_back(std::move(placement));
  }
  for (const auto& [kind, pool] : free) plan.idle_left[kind] = static_cast<int64_t>(pool.size());
  return plan;
}

std::string QueuedReason(const PendingJob& job, const WaitingJob& waiting, const SchedulePlan& plan,
                         const RegisteredWorkers& registered) {
  const int64_t mine = CountOf(registered, job.device);
  const int64_t idle = CountOf(plan.idle_left, job.device);
  // "1 of 3 ... is idle", "0 of 1 ... is idle", "2 of 3 ... are idle".
  const char* verb = idle == 1 || mine == 1 ? "is" : "are";
  std::string reason = absl::StrCat("waiting for ", Workers(job.world_size, "idle", job.device));
  if (!waiting.behind.empty()) {
    absl::StrAppend(&reason, " behind ", waiting.behind,
                    ", which is ahead in the queue and holds the idle ", KindName(job.device),
                    " workers (", idle, " of ", mine, " registered ", verb, " idle)");
    return reason;
  }
  if (mine == 0) {
    absl::StrAppend(&reason, ": no ", KindName(job.device), " worker is registered");
  } else if (mine < job.world_size) {
    absl::StrAppend(&reason, ": only ", Workers(mine, "", job.device), " ",
                    mine == 1 ? "is" : "are", " registered, so it holds none until more register");
  } else if (!job.may_reserve) {
    absl::StrAppend(&reason, ": ", idle, " of ", Workers(mine, "registered", job.device), " ", verb,
                    " idle; it held them for --max-reservation-hold, so smaller jobs may use them "
                    "for a while");
  } else {
    absl::StrAppend(&reason, ": ", idle, " of ", Workers(mine, "registered", job.device), " ", verb,
                    " idle");
  }
  // Workers of another kind are the usual surprise ("but I have three workers"): name them.
  std::vector<std::string> others;
  for (const auto& [kind, n] : registered) {
    if (kind != job.device && n > 0) {
      others.push_back(absl::StrCat(Workers(n, "", kind), n == 1 ? " does" : " do"));
    }
  }
  if (!others.empty()) absl::StrAppend(&reason, " (", absl::StrJoin(others, ", "), " not match)");
  return reason;
}

}  // namespace dino::server
