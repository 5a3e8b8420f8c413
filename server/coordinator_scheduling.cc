// Coordinator: scheduling passes and the start of an attempt (the policy itself is PlanGangs in
// scheduler.h).
#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "proto/dino/time_util.h"
#include "server/coordinator.h"
#include "server/scheduler.h"

namespace dino::server {

using dino::v1::Attempt;
using dino::v1::CoordinatorMessage;
using dino::v1::Job;
using dino::v1::JobEvent;
using dino::v1::JobState;

absl::Status Coordinator::CheckGangCanFormLocked(const dino::v1::JobSpec& spec) {
  const dino::v1::DeviceKind kind = spec.resources().device();
  const WorkerRegistry::Fleet fleet = workers_.FleetOf(kind);
  const int64_t registered = fleet.registered;
  const absl::Time oldest = fleet.oldest_registration;
  // A fleet still coming up (its first worker registered less than a liveness timeout ago) may
  // be about to grow: the job is accepted and waits, without holding workers (ScheduleLocked).
  const bool settled = registered > 0 && clock_->Now() - oldest >= options_.worker_timeout;
  if (!settled || spec.resources().world_size() <= registered) return absl::OkStatus();
  const absl::string_view kind_name =
      absl::StripPrefix(dino::v1::DeviceKind_Name(kind), "DEVICE_KIND_");
  return absl::FailedPreconditionError(
      absl::StrCat("resources.world_size ", spec.resources().world_size(), " is more than the ",
                   registered, " registered workers of ", kind_name,
                   ": the gang could never form; register more workers first or lower world_size"));
}

void Coordinator::ScheduleLocked() {
  if (shutting_down_) return;
  const absl::Time now = clock_->Now();
  const RegisteredWorkers registered = workers_.LiveByDevice();
  std::vector<PendingJob> queue;
  for (auto& [id, entry] : jobs_) {
    const JobState state = entry.job.state();
    if (state != dino::v1::JOB_STATE_QUEUED && state != dino::v1::JOB_STATE_RESTARTING) {
      entry.holding_since = absl::InfinitePast();
      continue;
    }
    PendingJob pending;
    pending.job_id = id;
    pending.priority = entry.job.spec().priority();
    pending.submit_time = FromTimestampProto(entry.job.submit_time());
    pending.world_size = entry.job.spec().resources().world_size();
    pending.device = entry.job.spec().resources().device();
    // A hold that lasted max_reservation_hold ends here, and the job stays off for as long again.
    if (entry.holding_since != absl::InfinitePast() &&
        now - entry.holding_since >= options_.max_reservation_hold) {
      DINO_LOG(INFO) << "job " << id << " held the idle workers for "
                     << absl::FormatDuration(now - entry.holding_since)
                     << " without its gang forming; releasing them for "
                     << absl::FormatDuration(options_.max_reservation_hold);
      entry.holding_since = absl::InfinitePast();
      entry.hold_again_after = now + options_.max_reservation_hold;
    }
    auto fleet = registered.find(pending.device);
    pending.may_reserve = fleet != registered.end() && fleet->second >= pending.world_size &&
                          now >= entry.hold_again_after;
    queue.push_back(pending);
  }
  if (metrics_ != nullptr) metrics_->queue_length->Set(static_cast<double>(queue.size()));
  if (queue.empty()) return;
  const std::vector<IdleWorker> idle = workers_.Schedulable();
  std::map<std::string, PendingJob> pending_by_id;
  for (const PendingJob& pending : queue) pending_by_id.emplace(pending.job_id, pending);
  SchedulePlan plan = PlanGangs(std::move(queue), idle);
  for (auto& [id, entry] : jobs_) {
    const bool holding = std::find(plan.reserved_for.begin(), plan.reserved_for.end(), id) !=
                         plan.reserved_for.end();
    if (!holding) {
      entry.holding_since = absl::InfinitePast();
    } else if (entry.holding_since == absl::InfinitePast()) {
      entry.holding_since = now;
    }
  }
  // Job.queued_reason is derived from this pass, so it is set in memory only: it is not a
  // transition (no event, no store write per pass); CommitLocked clears it when the job starts.
  for (const WaitingJob& waiting : plan.waiting) {
    jobs_.at(waiting.job_id)
        .job.set_queued_reason(
            QueuedReason(pending_by_id.at(waiting.job_id), waiting, plan, registered));
  }
  for (const GangPlacement& placement : plan.placements) {
    JobEntry& entry = jobs_.at(placement.job_id);
    absl::Status status = StartAttemptLocked(entry, placement.worker_ids);
    if (!status.ok()) {
      DINO_LOG(ERROR) << "could not start an attempt of " << placement.job_id << ": " << status;
      entry.job.set_queued_reason(
          absl::StrCat("a gang was found but the attempt could not start: ", status.message()));
    }
  }
}

absl::Status Coordinator::StartAttemptLocked(JobEntry& entry,
                                             const std::vector<std::string>& worker_ids) {
  Job updated = entry.job;
  Attempt* attempt = updated.add_attempts();
  attempt->set_number(updated.attempts_size());
  attempt->set_state(dino::v1::ATTEMPT_STATE_RUNNING);
  *attempt->mutable_start_time() = NowProto();
  absl::StatusOr<StoredCheckpoint> resume = checkpoints_->Resolve(updated.id(), "latest");
  if (resume.ok()) {
    attempt->set_resume_checkpoint_id(resume->info.id());
    attempt->set_resume_step(resume->info.step());
  } else if (!absl::IsNotFound(resume.status())) {
    return resume.status();
  }
  for (size_t rank = 0; rank < worker_ids.size(); ++rank) {
    const WorkerEntry& worker = *workers_.Find(worker_ids[rank]);  // Placed: known and idle.
    auto* r = attempt->add_ranks();
    r->set_rank(static_cast<int32_t>(rank));
    r->set_worker_id(worker.info.id());
    r->set_worker_name(worker.info.name());
    r->set_rendezvous_address(worker.info.rendezvous_address());
  }
  if (!updated.has_start_time()) *updated.mutable_start_time() = attempt->start_time();
  updated.set_restarts(CountedRestarts(updated));
  const std::string message =
      absl::StrCat("attempt ", attempt->number(), " on ", worker_ids.size(), " workers",
                   resume.ok() ? absl::StrCat(", resuming from step ", resume->info.step()) : "");
  std::vector<JobEvent> events = {StateEventLocked(updated, dino::v1::JOB_STATE_RUNNING,
                                                   dino::v1::FAILURE_REASON_UNSPECIFIED, message)};
  events[0].mutable_state_change()->set_attempt(attempt->number());
  updated.set_state(dino::v1::JOB_STATE_RUNNING);
  updated.set_message(message);
  // The gang's records change in the job's transaction: a crash cannot leave the job RUNNING on
  // workers stored idle (nor workers busy in an attempt that was never stored).
  Effects effects;
  for (const auto& rank : attempt->ranks()) {
    dino::v1::WorkerInfo busy = workers_.Find(rank.worker_id())->info;
    busy.set_state(dino::v1::WORKER_STATE_BUSY);
    busy.set_job_id(updated.id());
    busy.set_attempt(attempt->number());
    busy.set_rank(rank.rank());
    effects.workers.push_back(std::move(busy));
  }
  const absl::Time queued_since = entry.queued_since;
  DINO_RETURN_IF_ERROR(
      CommitLocked(entry, std::move(updated), std::move(events), std::move(effects)));
  if (metrics_ != nullptr) {
    metrics_->scheduling_latency->Observe(absl::ToDoubleSeconds(clock_->Now() - queued_since));
  }
  const Attempt& started = entry.job.attempts(entry.job.attempts_size() - 1);
  for (const auto& rank : started.ranks()) {
    workers_.Send(rank.worker_id(),
                  AssignmentLocked(entry.job, rank.rank(), resume.ok() ? &resume->info : nullptr));
  }
  DINO_LOG(INFO) << "job " << entry.job.id() << ": " << message;
  UpdateGaugesLocked();
  return absl::OkStatus();
}

CoordinatorMessage Coordinator::AssignmentLocked(const Job& job, int32_t rank,
                                                 const dino::v1::CheckpointInfo* resume) {
  const Attempt& attempt = job.attempts(job.attempts_size() - 1);
  CoordinatorMessage message;
  auto* assignment = message.mutable_assignment();
  assignment->set_job_id(job.id());
  assignment->set_attempt(attempt.number());
  assignment->set_rank(rank);
  assignment->set_world_size(attempt.ranks_size());
  assignment->set_master_address(attempt.ranks(0).rendezvous_address());
  assignment->set_store_prefix(absl::StrCat(job.id(), "/attempt-", attempt.number()));
  *assignment->mutable_spec() = job.spec();
  if (resume != nullptr) {
    *assignment->mutable_resume_checkpoint() = *resume;
  } else if (!attempt.resume_checkpoint_id().empty()) {
    absl::StatusOr<StoredCheckpoint> stored =
        checkpoints_->Resolve(job.id(), attempt.resume_checkpoint_id());
    if (stored.ok()) *assignment->mutable_resume_checkpoint() = stored->info;
  }
  return message;
}

}  // namespace dino::server
