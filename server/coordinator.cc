// Coordinator: jobs, attempts, events and liveness. Scheduling is in coordinator_scheduling.cc, the
// worker-facing RPCs in coordinator_workers.cc.
#include "server/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "proto/dino/time_util.h"
#include "spec/job_spec.h"

namespace dino::server {

using dino::v1::Attempt;
using dino::v1::CoordinatorMessage;
using dino::v1::Job;
using dino::v1::JobEvent;
using dino::v1::JobState;

namespace {

int64_t SeqOf(const std::string& id) {
  int64_t seq = 0;
  const size_t dash = id.rfind('-');
  if (dash != std::string::npos && absl::SimpleAtoi(id.substr(dash + 1), &seq)) return seq;
  return 0;
}

}  // namespace

bool IsRetryable(dino::v1::FailureReason reason) {
  switch (reason) {
    case dino::v1::FAILURE_REASON_BAD_DATASET:
    case dino::v1::FAILURE_REASON_NON_FINITE_LOSS:
    case dino::v1::FAILURE_REASON_OUT_OF_MEMORY:
    case dino::v1::FAILURE_REASON_INVALID_SPEC:
    case dino::v1::FAILURE_REASON_COLLAPSE:
    case dino::v1::FAILURE_REASON_COORDINATOR_LIMIT:  // The same checkpoint would be refused again.
      return false;
    default:
      return true;
  }
}

bool IsTerminal(JobState state) {
  return state == dino::v1::JOB_STATE_SUCCEEDED || state == dino::v1::JOB_STATE_FAILED ||
         state == dino::v1::JOB_STATE_CANCELLED;
}

Coordinator::Coordinator(Store* store, CheckpointRegistry* checkpoints, Clock* clock,
                         CoordinatorOptions options, CoordinatorMetrics* metrics)
    : store_(store),
      checkpoints_(checkpoints),
      clock_(clock),
      options_(options),
      metrics_(metrics),
      workers_(store, clock),
      watches_(store) {}

google::protobuf::Timestamp Coordinator::NowProto() const {
  return ToMicrosTimestampProto(clock_->Now());
}

absl::Status Coordinator::Recover() {
  DINO_RETURN_IF_ERROR(checkpoints_->Recover());
  DINO_ASSIGN_OR_RETURN(std::vector<Job> jobs, store_->LoadJobs());
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::WorkerInfo> workers, store_->LoadWorkers());
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (Job& job : jobs) {
    JobEntry entry;
    entry.seq = SeqOf(job.id());
    next_job_seq_ = std::max(next_job_seq_, entry.seq + 1);
    entry.queued_since = now;
    entry.progress_since = now;
    if (!job.spec().request_id().empty()) jobs_by_request_id_[job.spec().request_id()] = job.id();
    entry.job = std::move(job);
    const std::string id = entry.job.id();
    jobs_.emplace(id, std::move(entry));
  }
  workers_.Restore(std::move(workers));  // Each has one liveness timeout to reconnect.
  // A worker recorded as busy in an attempt that is no longer running is idle.
  for (WorkerEntry* worker : workers_.InState(dino::v1::WORKER_STATE_BUSY)) {
    auto it = jobs_.find(worker->info.job_id());
    const bool current = it != jobs_.end() &&
                         it->second.job.state() == dino::v1::JOB_STATE_RUNNING &&
                         it->second.job.attempts_size() == worker->info.attempt();
    if (!current) workers_.SetIdle(*worker);
  }
  ReconcileRunningJobsLocked();
  DINO_LOG(INFO) << "recovered " << jobs_.size() << " jobs and " << workers_.size() << " workers";
  UpdateGaugesLocked();
  return absl::OkStatus();
}

absl::StatusOr<Coordinator::JobEntry*> Coordinator::FindJobLocked(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return &it->second;
}

JobEvent Coordinator::StateEventLocked(const Job& job, JobState to, dino::v1::FailureReason reason,
                                       const std::string& message) {
  JobEvent event;
  auto* change = event.mutable_state_change();
  change->set_from_state(job.state());
  change->set_to_state(to);
  change->set_attempt(job.attempts_size());
  change->set_failure_reason(reason);
  change->set_message(message);
  return event;
}

absl::Status Coordinator::CommitLocked(JobEntry& entry, Job updated, std::vector<JobEvent> events,
                                       Effects effects) {
  const auto now = NowProto();
  for (JobEvent& event : events) {
    event.set_index(updated.last_event_index() + 1);
    updated.set_last_event_index(event.index());
    event.set_job_id(updated.id());
    *event.mutable_time() = now;
  }
  const bool was_queued = entry.job.state() == dino::v1::JOB_STATE_QUEUED ||
                          entry.job.state() == dino::v1::JOB_STATE_RESTARTING;
  const bool queued = updated.state() == dino::v1::JOB_STATE_QUEUED ||
                      updated.state() == dino::v1::JOB_STATE_RESTARTING;
  // Set by the scheduling pass while the job waits, and meaningless once it does not.
  if (!queued) updated.clear_queued_reason();
  JobWrites also;
  also.workers = std::move(effects.workers);
  also.checkpoint = std::move(effects.checkpoint);
  DINO_RETURN_IF_ERROR(store_->SaveJob(updated, events, also));
  for (dino::v1::WorkerInfo& info : also.workers) workers_.Replace(std::move(info));
  for (const auto& [worker_id, job_id, attempt] : effects.dropping) {
    workers_.MarkDropping(worker_id, job_id, attempt);
  }
  if (queued && !was_queued) entry.queued_since = clock_->Now();
  if (updated.state() == dino::v1::JOB_STATE_RUNNING &&
      updated.attempts_size() != entry.job.attempts_size()) {
    entry.progress_since = clock_->Now();
  }
  entry.job = std::move(updated);
  watches_.Publish(entry.job.id(), events, IsTerminal(entry.job.state()));
  for (const auto& [worker_id, message] : effects.messages) workers_.Send(worker_id, message);
  UpdateGaugesLocked();
  return absl::OkStatus();
}

absl::StatusOr<dino::v1::SubmitJobResponse> Coordinator::SubmitJob(dino::v1::JobSpec spec,
                                                                   const JobCaller& caller) {
  const std::string& submitter = caller.name;
  spec::ApplyJobSpecDefaults(&spec);
  DINO_RETURN_IF_ERROR(spec::ValidateJobSpec(spec));
  if (!caller.admin && spec.priority() > options_.max_submitter_priority) {
    return absl::PermissionDeniedError(
        absl::StrCat("priority ", spec.priority(), " is above --max-submitter-priority=",
                     options_.max_submitter_priority, "; only an admin may set a higher priority"));
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
  dino::v1::SubmitJobResponse response;
  if (!spec.request_id().empty()) {
    auto it = jobs_by_request_id_.find(spec.request_id());
    if (it != jobs_by_request_id_.end()) {
      *response.mutable_job() = jobs_.at(it->second).job;
      response.set_created(false);
      return response;
    }
  }
  if (options_.max_queued_per_submitter > 0) {
    int queued = 0;
    for (const auto& [id, other] : jobs_) {
      queued +=
          other.job.state() == dino::v1::JOB_STATE_QUEUED && other.job.submitter() == submitter;
    }
    if (queued >= options_.max_queued_per_submitter) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "submitter \"", submitter, "\" already has ", queued,
          " queued jobs (--max-queued-per-submitter=", options_.max_queued_per_submitter, ")"));
    }
  }
  DINO_RETURN_IF_ERROR(CheckGangCanFormLocked(spec));
  const int64_t seq = next_job_seq_++;
  JobEntry entry;
  entry.seq = seq;
  Job job;
  job.set_id(absl::StrCat("job-", seq));
  job.set_submitter(submitter);
  *job.mutable_submit_time() = NowProto();
  job.set_state(dino::v1::JOB_STATE_UNSPECIFIED);
  *job.mutable_spec() = std::move(spec);
  std::vector<JobEvent> events = {StateEventLocked(
      job, dino::v1::JOB_STATE_QUEUED, dino::v1::FAILURE_REASON_UNSPECIFIED, "submitted")};
  job.set_state(dino::v1::JOB_STATE_QUEUED);
  job.set_message("waiting for a gang of workers");
  entry.job.set_id(job.id());
  JobEntry& stored = jobs_.emplace(job.id(), std::move(entry)).first->second;
  absl::Status status = CommitLocked(stored, job, std::move(events));
  if (!status.ok()) {
    jobs_.erase(job.id());
    return status;
  }
  if (!job.spec().request_id().empty()) jobs_by_request_id_[job.spec().request_id()] = job.id();
  if (metrics_ != nullptr) metrics_->submissions->Increment();
  DINO_LOG(INFO) << "job " << job.id() << " submitted (" << job.spec().name() << ", world_size "
                 << job.spec().resources().world_size() << ")";
  ScheduleLocked();
  *response.mutable_job() = stored.job;
  response.set_created(true);
  return response;
}

absl::StatusOr<Job> Coordinator::CancelJob(const std::string& job_id, const std::string& reason,
                                           const JobCaller& caller) {
  absl::MutexLock lock(&mu_);
  DINO_ASSIGN_OR_RETURN(JobEntry * entry, FindJobLocked(job_id));
  if (!caller.admin && entry->job.submitter() != caller.name) {
    return absl::PermissionDeniedError(
        absl::StrCat("\"", caller.name, "\" may cancel only its own jobs; ", job_id,
                     " was submitted by \"", entry->job.submitter(), "\""));
  }
  if (IsTerminal(entry->job.state())) return entry->job;
  const std::string message = reason.empty() ? "cancelled by a user" : reason;
  Job updated = entry->job;
  Effects effects;
  if (updated.state() == dino::v1::JOB_STATE_RUNNING) {
    CoordinatorMessage notice;
    auto* cancel = notice.mutable_cancel();
    cancel->set_job_id(job_id);
    cancel->set_attempt(updated.attempts_size());
    cancel->set_reason(message);
    EndAttemptLocked(updated, dino::v1::ATTEMPT_STATE_CANCELLED,
                     dino::v1::FAILURE_REASON_UNSPECIFIED, message, "", notice, &effects);
  }
  std::vector<JobEvent> events = {StateEventLocked(updated, dino::v1::JOB_STATE_CANCELLED,
                                                   dino::v1::FAILURE_REASON_UNSPECIFIED, message)};
  updated.set_state(dino::v1::JOB_STATE_CANCELLED);
  updated.set_message(message);
  *updated.mutable_end_time() = NowProto();
  DINO_RETURN_IF_ERROR(
      CommitLocked(*entry, std::move(updated), std::move(events), std::move(effects)));
  if (metrics_ != nullptr) metrics_->cancellations->Increment();
  DINO_LOG(INFO) << "job " << job_id << " cancelled: " << message;
  ScheduleLocked();
  return entry->job;
}

void Coordinator::EndAttemptLocked(Job& job, dino::v1::AttemptState state,
                                   dino::v1::FailureReason reason, const std::string& message,
                                   const std::string& except_worker,
                                   std::optional<CoordinatorMessage> notice, Effects* effects) {
  if (job.attempts_size() == 0) return;
  Attempt* attempt = job.mutable_attempts(job.attempts_size() - 1);
  if (attempt->state() != dino::v1::ATTEMPT_STATE_RUNNING) return;
  attempt->set_state(state);
  *attempt->mutable_end_time() = NowProto();
  attempt->set_failure_reason(reason);
  attempt->set_failure_message(message);
  for (const auto& rank : attempt->ranks()) {
    const WorkerEntry* found = workers_.Find(rank.worker_id());
    if (found == nullptr) continue;
    const WorkerEntry& worker = *found;
    const bool in_attempt = worker.info.job_id() == job.id() &&
                            worker.info.attempt() == attempt->number() &&
                            worker.info.state() == dino::v1::WORKER_STATE_BUSY;
    if (!in_attempt) continue;
    if (notice.has_value() && rank.worker_id() != except_worker) {
      effects->messages.emplace_back(rank.worker_id(), *notice);
    }
    // A rank that did not end the attempt itself is told to: it is not given another one until
    // it says it dropped this one (it may be stopped, or still inside a collective).
    if (state != dino::v1::ATTEMPT_STATE_SUCCEEDED && rank.worker_id() != except_worker) {
      effects->dropping.emplace_back(rank.worker_id(), job.id(), attempt->number());
    }
    dino::v1::WorkerInfo idle = worker.info;
    idle.set_state(dino::v1::WORKER_STATE_IDLE);
    idle.clear_job_id();
    idle.clear_attempt();
    idle.clear_rank();
    effects->workers.push_back(std::move(idle));
  }
}

absl::Status Coordinator::FailAttemptLocked(JobEntry& entry, dino::v1::FailureReason reason,
                                            const std::string& message,
                                            const std::string& except_worker) {
  Job updated = entry.job;
  // A gang that loses a leaving worker fails in whatever way its peers notice first (a collective
  // abort, a lost worker); all of these are the one preemption.
  if (reason != dino::v1::FAILURE_REASON_PREEMPTED && AttemptHasLeavingWorkerLocked(updated)) {
    reason = dino::v1::FAILURE_REASON_PREEMPTED;
  }
  const bool preempted = reason == dino::v1::FAILURE_REASON_PREEMPTED;
  CoordinatorMessage notice;
  auto* abort = notice.mutable_abort();
  abort->set_job_id(updated.id());
  abort->set_attempt(updated.attempts_size());
  abort->set_reason(message);
  Effects effects;
  EndAttemptLocked(updated, dino::v1::ATTEMPT_STATE_FAILED, reason, message, except_worker, notice,
                   &effects);
  const bool retry = preempted || (IsRetryable(reason) &&
                                   CountedRestarts(updated) < updated.spec().max_restarts());
  std::vector<JobEvent> events;
  if (preempted) {
    const std::string why = absl::StrCat("attempt ", updated.attempts_size(), " preempted (",
                                         message, "); resuming from the latest checkpoint");
    events.push_back(StateEventLocked(updated, dino::v1::JOB_STATE_RESTARTING, reason, why));
    updated.set_state(dino::v1::JOB_STATE_RESTARTING);
    updated.set_message(why);
    updated.set_preemptions(updated.preemptions() + 1);
  } else if (retry) {
    const std::string why = absl::StrCat("attempt ", updated.attempts_size(), " failed (",
                                         dino::v1::FailureReason_Name(reason), ": ", message,
                                         "); restarting from the latest checkpoint");
    events.push_back(StateEventLocked(updated, dino::v1::JOB_STATE_RESTARTING, reason, why));
    updated.set_state(dino::v1::JOB_STATE_RESTARTING);
    updated.set_message(why);
    if (metrics_ != nullptr) metrics_->restarts->Increment();
  } else {
    std::string why = absl::StrCat(dino::v1::FailureReason_Name(reason), ": ", message);
    if (IsRetryable(reason)) {
      absl::StrAppend(&why, " (max_restarts ", updated.spec().max_restarts(), " exhausted)");
    }
    events.push_back(StateEventLocked(updated, dino::v1::JOB_STATE_FAILED, reason, why));
    updated.set_state(dino::v1::JOB_STATE_FAILED);
    updated.set_failure_reason(reason);
    updated.set_message(why);
    *updated.mutable_end_time() = NowProto();
  }
  const std::string summary = absl::StrCat("job ", updated.id(), ": ", updated.message());
  DINO_RETURN_IF_ERROR(
      CommitLocked(entry, std::move(updated), std::move(events), std::move(effects)));
  DINO_LOG(WARNING) << summary;
  return absl::OkStatus();
}

}  // namespace dino::server
