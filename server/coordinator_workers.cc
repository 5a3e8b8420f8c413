// Coordinator: the worker-facing side (registration, streams, heartbeats, progress, results) and
// worker liveness bookkeeping. Checkpoint uploads are in coordinator_checkpoints.cc.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "proto/dino/time_util.h"
#include "server/coordinator.h"

namespace dino::server {

using dino::v1::CoordinatorMessage;
using dino::v1::Job;
using dino::v1::JobEvent;

absl::Status Coordinator::MarkDeadLocked(WorkerEntry& worker, const std::string& why) {
  const std::string job_id = worker.info.job_id();
  const bool busy = worker.info.state() == dino::v1::WORKER_STATE_BUSY;
  const int32_t rank = worker.info.rank();
  if (busy) {
    auto it = jobs_.find(job_id);
    if (it != jobs_.end() && it->second.job.state() == dino::v1::JOB_STATE_RUNNING &&
        it->second.job.attempts_size() == worker.info.attempt()) {
      absl::Status status = FailAttemptLocked(
          it->second, dino::v1::FAILURE_REASON_WORKER_LOST,
          absl::StrCat("worker ", worker.info.id(), " (rank ", rank, ") was lost: ", why),
          worker.info.id());
      if (!status.ok()) {
        DINO_LOG(ERROR) << "worker " << worker.info.id() << " (" << worker.info.name()
                        << ") is lost (" << why << ") but the attempt of " << job_id
                        << " could not be failed; retrying on the next tick: " << status;
        return status;
      }
    }
  }
  workers_.SetDead(worker, why);
  UpdateGaugesLocked();
  return absl::OkStatus();
}

absl::StatusOr<dino::v1::RegisterResponse> Coordinator::RegisterWorker(
    const dino::v1::RegisterRequest& request, const std::string& credential) {
  DINO_ASSIGN_OR_RETURN(dino::v1::DeviceKind kind, WorkerRegistry::CheckRegistration(request));
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
  DINO_ASSIGN_OR_RETURN(WorkerEntry * worker, workers_.Register(request, kind, credential));
  const dino::v1::WorkerInfo& info = worker->info;

  bool keep_running = false;
  if (info.state() == dino::v1::WORKER_STATE_BUSY) {
    const auto& running = request.running();
    keep_running = request.has_running() && running.job_id() == info.job_id() &&
                   running.attempt() == info.attempt() && running.rank() == info.rank();
    if (!keep_running) {
      auto it = jobs_.find(info.job_id());
      if (it != jobs_.end() && it->second.job.state() == dino::v1::JOB_STATE_RUNNING &&
          it->second.job.attempts_size() == info.attempt()) {
        DINO_RETURN_IF_ERROR(FailAttemptLocked(
            it->second, dino::v1::FAILURE_REASON_COORDINATOR,
            absl::StrCat("worker ", info.id(), " re-registered without its attempt"), info.id()));
      }
      workers_.SetIdle(*worker);
    }
  }
  if (request.has_running() && !keep_running) {
    // It comes back inside an attempt that is over: schedulable once it says it dropped it.
    workers_.MarkDropping(info.id(), request.running().job_id(), request.running().attempt());
  } else {
    workers_.SawRunning(*worker, request.has_running() ? &request.running() : nullptr);
  }
  workers_.Save(*worker);
  DINO_LOG(INFO) << "worker " << info.id() << " registered: " << info.name() << ", "
                 << info.device() << ", " << info.threads() << " threads, rendezvous "
                 << info.rendezvous_address() << (keep_running ? " (keeps its attempt)" : "");
  dino::v1::RegisterResponse response;
  response.set_worker_id(info.id());
  *response.mutable_heartbeat_interval() = ToDurationProto(options_.heartbeat_interval);
  *response.mutable_worker_timeout() = ToDurationProto(options_.worker_timeout);
  response.set_keep_running(keep_running);
  UpdateGaugesLocked();
  return response;
}

absl::Status Coordinator::AttachWorker(const std::string& worker_id,
                                       std::shared_ptr<WorkerChannel> channel,
                                       const std::string& credential) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
  DINO_ASSIGN_OR_RETURN(WorkerEntry * found, workers_.FindLive(worker_id));
  DINO_RETURN_IF_ERROR(workers_.CheckCredential(worker_id, credential));
  WorkerEntry& worker = *found;
  workers_.Attach(worker, std::move(channel));
  if (metrics_ != nullptr) metrics_->heartbeats->Increment();
  if (worker.info.state() == dino::v1::WORKER_STATE_BUSY) {
    // Reconnected mid-attempt (e.g. after a coordinator restart): the assignment may have been
    // lost with the old stream, so send it again; the worker ignores a copy of what it runs.
    auto it = jobs_.find(worker.info.job_id());
    if (it != jobs_.end() && it->second.job.state() == dino::v1::JOB_STATE_RUNNING &&
        it->second.job.attempts_size() == worker.info.attempt()) {
      worker.channel->Send(AssignmentLocked(it->second.job, worker.info.rank(), nullptr));
    }
  }
  ScheduleLocked();
  return absl::OkStatus();
}

void Coordinator::DetachWorker(const std::string& worker_id, const WorkerChannel* channel) {
  absl::MutexLock lock(&mu_);
  WorkerEntry* worker = workers_.Detach(worker_id, channel);
  if (worker == nullptr) return;
  // A leaving worker that closed its stream is gone (its attempt, if still running, is preempted).
  // When its attempt cannot be failed now, the liveness timeout declares it dead later.
  if (worker->leaving && MarkDeadLocked(*worker, "left the pool (shut down)").ok()) {
    ScheduleLocked();
  }
}

absl::Status Coordinator::Heartbeat(const std::string& worker_id,
                                    const dino::v1::Heartbeat& heartbeat) {
  absl::MutexLock lock(&mu_);
  DINO_ASSIGN_OR_RETURN(WorkerEntry * found, workers_.FindLive(worker_id));
  WorkerEntry& worker = *found;
  workers_.Touch(worker);
  if (metrics_ != nullptr) metrics_->heartbeats->Increment();
  if (heartbeat.has_running()) {
    const auto& running = heartbeat.running();
    const bool current = worker.info.state() == dino::v1::WORKER_STATE_BUSY &&
                         worker.info.job_id() == running.job_id() &&
                         worker.info.attempt() == running.attempt();
    if (!current && worker.channel != nullptr) {
      CoordinatorMessage abort;
      abort.mutable_abort()->set_job_id(running.job_id());
      abort.mutable_abort()->set_attempt(running.attempt());
      abort.mutable_abort()->set_reason("this attempt is no longer current");
      worker.channel->Send(abort);
    }
  }
  if (workers_.SawRunning(worker, heartbeat.has_running() ? &heartbeat.running() : nullptr)) {
    ScheduleLocked();
  }
  return absl::OkStatus();
}

absl::StatusOr<Coordinator::JobEntry*> Coordinator::CurrentAttemptLocked(
    const std::string& job_id, int32_t attempt, const std::string& worker_id) {
  DINO_ASSIGN_OR_RETURN(JobEntry * entry, FindJobLocked(job_id));
  const Job& job = entry->job;
  if (job.state() != dino::v1::JOB_STATE_RUNNING || job.attempts_size() != attempt ||
      job.attempts(attempt - 1).state() != dino::v1::ATTEMPT_STATE_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat(
        "attempt ", attempt, " of ", job_id, " is not current (job ",
        dino::v1::JobState_Name(job.state()), ", ", job.attempts_size(), " attempts)"));
  }
  for (const auto& rank : job.attempts(attempt - 1).ranks()) {
    if (rank.worker_id() == worker_id) {
      WorkerEntry* worker = workers_.Find(worker_id);
      if (worker != nullptr) workers_.Touch(*worker);
      return entry;
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("worker ", worker_id, " is not in attempt ", attempt, " of ", job_id));
}

absl::StatusOr<dino::v1::ReportProgressResponse> Coordinator::ReportProgress(
    const dino::v1::ReportProgressRequest& request, const std::string& credential) {
  absl::MutexLock lock(&mu_);
  DINO_RETURN_IF_ERROR(workers_.CheckCredential(request.worker_id(), credential));
  dino::v1::ReportProgressResponse response;
  {
    DINO_ASSIGN_OR_RETURN(JobEntry * entry, FindJobLocked(request.job_id()));
    if (entry->job.state() == dino::v1::JOB_STATE_CANCELLED &&
        entry->job.attempts_size() == request.attempt()) {
      response.set_cancel_requested(true);
      return response;
    }
  }
  DINO_ASSIGN_OR_RETURN(JobEntry * entry, CurrentAttemptLocked(request.job_id(), request.attempt(),
                                                               request.worker_id()));
  const int64_t last_step =
      entry->job.has_latest_stats() ? entry->job.latest_stats().step() : int64_t{-1};
  std::vector<dino::v1::StepStats> fresh;
  for (const auto& stats : request.stats()) {
    if (stats.step() > last_step && (fresh.empty() || stats.step() > fresh.back().step())) {
      fresh.push_back(stats);
      if (!fresh.back().has_time()) *fresh.back().mutable_time() = NowProto();
    }
  }
  if (fresh.empty()) return response;
  DINO_RETURN_IF_ERROR(store_->AppendStats(request.job_id(), fresh));
  Job updated = entry->job;
  std::vector<JobEvent> events;
  std::optional<dino::v1::CollapseWarning> fatal;
  CollapseDetector collapse(updated.spec().collapse(), updated.collapse_streak());
  for (const auto& stats : fresh) {
    JobEvent progress;
    *progress.mutable_progress() = stats;
    events.push_back(std::move(progress));
    std::optional<dino::v1::CollapseWarning> warning = collapse.Observe(stats);
    if (warning.has_value()) {
      JobEvent collapse;
      *collapse.mutable_collapse_warning() = *warning;
      events.push_back(std::move(collapse));
      *updated.add_collapse_warnings() = *warning;
      updated.set_collapse_flagged(true);
      if (metrics_ != nullptr) metrics_->collapse_warnings->Increment();
      if (updated.spec().collapse().policy() == dino::v1::COLLAPSE_POLICY_FAIL) fatal = warning;
    }
  }
  *updated.mutable_latest_stats() = fresh.back();
  *updated.mutable_collapse_streak() = collapse.streak();
  DINO_RETURN_IF_ERROR(CommitLocked(*entry, std::move(updated), std::move(events)));
  entry->progress_since = clock_->Now();
  if (fatal.has_value()) {
    DINO_RETURN_IF_ERROR(
        FailAttemptLocked(*entry, dino::v1::FAILURE_REASON_COLLAPSE,
                          absl::StrCat(fatal->metric(), " stayed below ", fatal->threshold(),
                                       " for ", fatal->consecutive_reports(), " reports (",
                                       fatal->value(), " at step ", fatal->step(), ")"),
                          ""));
    response.set_cancel_requested(true);
    ScheduleLocked();
  }
  return response;
}

absl::Status Coordinator::ReportResult(const dino::v1::ReportResultRequest& request,
                                       const std::string& credential) {
  absl::MutexLock lock(&mu_);
  DINO_RETURN_IF_ERROR(workers_.CheckCredential(request.worker_id(), credential));
  DINO_ASSIGN_OR_RETURN(JobEntry * entry, FindJobLocked(request.job_id()));
  if (request.attempt() < 1 || request.attempt() > entry->job.attempts_size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", request.job_id(), " has no attempt ", request.attempt()));
  }
  absl::StatusOr<JobEntry*> current =
      CurrentAttemptLocked(request.job_id(), request.attempt(), request.worker_id());
  if (!current.ok()) return absl::OkStatus();  // The attempt already ended: nothing to do.
  // The rank this coordinator gave the worker, not the one it claims: only rank 0's success ends
  // the job, and a claimed rank would let any rank end it.
  int32_t rank = -1;
  for (const auto& assigned : entry->job.attempts(request.attempt() - 1).ranks()) {
    if (assigned.worker_id() == request.worker_id()) rank = assigned.rank();
  }
  WorkerEntry* worker = workers_.Find(request.worker_id());
  switch (request.outcome()) {
    case dino::v1::ATTEMPT_OUTCOME_SUCCEEDED: {
      if (rank != 0) {
        if (worker != nullptr) workers_.SetIdle(*worker);
        break;
      }
      Job updated = entry->job;
      Effects effects;
      EndAttemptLocked(updated, dino::v1::ATTEMPT_STATE_SUCCEEDED,
                       dino::v1::FAILURE_REASON_UNSPECIFIED, "", "", std::nullopt, &effects);
      if (request.has_knn_top1() &&
          (!updated.has_best_knn_top1() || request.knn_top1() > updated.best_knn_top1())) {
        updated.set_best_knn_top1(request.knn_top1());
      }
      if (request.has_knn_top1()) updated.set_latest_knn_top1(request.knn_top1());
      const std::string message = absl::StrCat("finished at step ", request.final_step());
      std::vector<JobEvent> events = {StateEventLocked(
          updated, dino::v1::JOB_STATE_SUCCEEDED, dino::v1::FAILURE_REASON_UNSPECIFIED, message)};
      updated.set_state(dino::v1::JOB_STATE_SUCCEEDED);
      updated.set_message(message);
      *updated.mutable_end_time() = NowProto();
      DINO_RETURN_IF_ERROR(
          CommitLocked(*entry, std::move(updated), std::move(events), std::move(effects)));
      DINO_LOG(INFO) << "job " << request.job_id() << " succeeded: " << message;
      break;
    }
    case dino::v1::ATTEMPT_OUTCOME_FAILED:
    case dino::v1::ATTEMPT_OUTCOME_CANCELLED: {
      const dino::v1::FailureReason reason =
          request.outcome() == dino::v1::ATTEMPT_OUTCOME_FAILED
              ? request.failure_reason()
              : dino::v1::FAILURE_REASON_INTERNAL;  // Cancelled without being asked to.
      // A worker that reports PREEMPTED is shutting down, even if its Leaving was lost. It becomes
      // idle with the rest of the gang, in the transaction that fails the attempt.
      if (worker != nullptr && reason == dino::v1::FAILURE_REASON_PREEMPTED) {
        worker->leaving = true;
      }
      DINO_RETURN_IF_ERROR(FailAttemptLocked(
          *entry, reason,
          absl::StrCat("rank ", rank, " (", request.worker_id(),
                       "): ", request.message().empty() ? "no message" : request.message()),
          request.worker_id()));
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("outcome must be SUCCEEDED, FAILED or CANCELLED, got ", request.outcome()));
  }
  ScheduleLocked();
  return absl::OkStatus();
}

std::vector<dino::v1::WorkerInfo> Coordinator::ListWorkers(bool include_dead) {
  absl::MutexLock lock(&mu_);
  return workers_.List(include_dead);
}

}  // namespace dino::server
