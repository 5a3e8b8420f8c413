// Coordinator: time-driven work (liveness, dead-worker retention), shutdown and the gauges.
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/coordinator.h"

namespace dino::server {

using dino::v1::JobState;

void Coordinator::Tick() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  const absl::Time now = clock_->Now();
  for (auto it = workers_.begin(); it != workers_.end();) {
    WorkerEntry& worker = it->second;
    if (worker.info.state() == dino::v1::WORKER_STATE_DEAD) {
      if (now - worker.last_seen > options_.dead_worker_retention) {
        it = workers_.erase(it);
        continue;
      }
    } else if (now - worker.last_seen > options_.worker_timeout) {
      MarkDeadLocked(worker,
                     absl::StrCat("silent for ", absl::FormatDuration(now - worker.last_seen)));
    }
    ++it;
  }
  ScheduleLocked();
}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  const absl::Status status = absl::UnavailableError("the coordinator is shutting down");
  for (auto& [id, worker] : workers_) {
    if (worker.channel != nullptr) worker.channel->Close(status);
    worker.channel = nullptr;
  }
  for (auto& [token, watcher] : watchers_) watcher.sink->OnEnd(status);
  watchers_.clear();
}

void Coordinator::UpdateGaugesLocked() {
  if (metrics_ == nullptr) return;
  std::map<std::string, int> jobs_by_state;
  for (int s = dino::v1::JOB_STATE_QUEUED; s <= dino::v1::JOB_STATE_CANCELLED; ++s) {
    jobs_by_state[JobState_Name(static_cast<JobState>(s)).substr(10)] = 0;
  }
  for (const auto& [id, entry] : jobs_)
    ++jobs_by_state[JobState_Name(entry.job.state()).substr(10)];
  for (const auto& [state, count] : jobs_by_state) {
    metrics_->jobs->WithLabels({state})->Set(count);
  }
  std::map<std::string, int> workers_by_state = {{"IDLE", 0}, {"BUSY", 0}, {"LOST", 0}};
  for (const auto& [id, worker] : workers_) {
    switch (worker.info.state()) {
      case dino::v1::WORKER_STATE_IDLE:
        ++workers_by_state["IDLE"];
        break;
      case dino::v1::WORKER_STATE_BUSY:
        ++workers_by_state["BUSY"];
        break;
      default:
        ++workers_by_state["LOST"];
        break;
    }
  }
  for (const auto& [state, count] : workers_by_state) {
    metrics_->workers->WithLabels({state})->Set(count);
  }
}

}  // namespace dino::server
