// Coordinator: time-driven work (liveness, dead-worker retention), graceful departures
// (preemption), shutdown and the gauges.
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/coordinator.h"

namespace dino::server {

using dino::v1::JobState;

void Coordinator::Tick() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  const absl::Time now = clock_->Now();
  workers_.ForgetDead(options_.dead_worker_retention);
  for (WorkerEntry* worker : workers_.Silent(options_.worker_timeout)) {
    // On an error the worker stays as it was, and the next tick tries again.
    MarkDeadLocked(*worker,
                   absl::StrCat("silent for ", absl::FormatDuration(now - worker->last_seen)))
        .IgnoreError();
  }
  FailStalledAttemptsLocked(now);
  ScheduleLocked();
}

void Coordinator::FailStalledAttemptsLocked(absl::Time now) {
  for (auto& [id, entry] : jobs_) {
    if (entry.job.state() != dino::v1::JOB_STATE_RUNNING) continue;
    const int64_t timeout_seconds = entry.job.spec().progress_timeout_seconds();
    if (timeout_seconds <= 0) continue;
    const absl::Duration silent = now - entry.progress_since;
    if (silent <= absl::Seconds(timeout_seconds)) continue;
    const std::string last =
        entry.job.has_latest_stats()
            ? absl::StrCat("the last reported step is ", entry.job.latest_stats().step())
            : std::string("no step was reported yet");
    // Its workers still heartbeat, so nothing else would ever end it. On a store error the
    // attempt keeps running and the next tick tries again.
    absl::Status status = FailAttemptLocked(
        entry, dino::v1::FAILURE_REASON_STALLED,
        absl::StrCat("no new step reported for ", absl::FormatDuration(silent), " (", last,
                     "; progress_timeout_seconds ", timeout_seconds, ")"),
        "");
    if (!status.ok()) {
      DINO_LOG(ERROR) << "could not fail the stalled attempt of " << id << ": " << status;
    }
  }
}

void Coordinator::ReconcileRunningJobsLocked() {
  for (auto& [id, entry] : jobs_) {
    if (entry.job.state() != dino::v1::JOB_STATE_RUNNING || entry.job.attempts_size() == 0) {
      continue;
    }
    const dino::v1::Attempt& attempt = entry.job.attempts(entry.job.attempts_size() - 1);
    std::string missing;
    for (const auto& rank : attempt.ranks()) {
      const WorkerEntry* worker = workers_.Find(rank.worker_id());
      const bool busy_here =
          worker != nullptr && worker->info.state() == dino::v1::WORKER_STATE_BUSY &&
          worker->info.job_id() == id && worker->info.attempt() == attempt.number() &&
          worker->info.rank() == rank.rank();
      if (!busy_here) {
        missing = absl::StrCat("worker ", rank.worker_id(), " (rank ", rank.rank(), ")");
        break;
      }
    }
    if (missing.empty()) continue;
    absl::Status status = FailAttemptLocked(
        entry, dino::v1::FAILURE_REASON_COORDINATOR,
        absl::StrCat("recovered RUNNING but ", missing, " is not recorded in attempt ",
                     attempt.number()),
        "");
    if (!status.ok()) {
      // Left RUNNING: its live ranks, if any, report or time out; the next restart checks again.
      DINO_LOG(ERROR) << "could not fail the unreconciled attempt of " << id << ": " << status;
    }
  }
}

int32_t CountedRestarts(const dino::v1::Job& job) {
  int32_t restarts = 0;
  for (int i = 1; i < job.attempts_size(); ++i) {
    if (job.attempts(i - 1).failure_reason() != dino::v1::FAILURE_REASON_PREEMPTED) ++restarts;
  }
  return restarts;
}

bool Coordinator::AttemptHasLeavingWorkerLocked(const dino::v1::Job& job) {
  if (job.attempts_size() == 0) return false;
  const dino::v1::Attempt& attempt = job.attempts(job.attempts_size() - 1);
  for (const auto& rank : attempt.ranks()) {
    const WorkerEntry* worker = workers_.Find(rank.worker_id());
    if (worker != nullptr && worker->leaving && worker->info.job_id() == job.id() &&
        worker->info.attempt() == attempt.number()) {
      return true;
    }
  }
  return false;
}

absl::Status Coordinator::WorkerLeaving(const std::string& worker_id, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  DINO_ASSIGN_OR_RETURN(WorkerEntry * found, workers_.FindLive(worker_id));
  WorkerEntry& worker = *found;
  workers_.Touch(worker);
  if (worker.leaving) return absl::OkStatus();
  worker.leaving = true;
  DINO_LOG(INFO) << "worker " << worker_id << " (" << worker.info.name() << ") is leaving"
                 << (worker.info.state() == dino::v1::WORKER_STATE_BUSY
                         ? absl::StrCat(" during ", worker.info.job_id(), " attempt ",
                                        worker.info.attempt())
                         : std::string())
                 << ": " << (reason.empty() ? "no reason given" : reason);
  return absl::OkStatus();
}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  const absl::Status status = absl::UnavailableError("the coordinator is shutting down");
  workers_.CloseAll(status);
  watches_.EndAll(status);
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
  for (const auto& [state, count] : workers_.CountByState()) {
    switch (state) {
      case dino::v1::WORKER_STATE_IDLE:
        workers_by_state["IDLE"] += count;
        break;
      case dino::v1::WORKER_STATE_BUSY:
        workers_by_state["BUSY"] += count;
        break;
      default:
        workers_by_state["LOST"] += count;
        break;
    }
  }
  for (const auto& [state, count] : workers_by_state) {
    metrics_->workers->WithLabels({state})->Set(count);
  }
}

}  // namespace dino::server
