// Coordinator: checkpoint uploads from the workers. The bytes stream into the registry outside
// the coordinator's lock; the commit is fenced by the uploading attempt under it, and the row goes
// into the store in the same transaction as the job's latest checkpoint and its event.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/coordinator.h"

namespace dino::server {

using dino::v1::Job;
using dino::v1::JobEvent;

absl::StatusOr<std::unique_ptr<CheckpointUpload>> Coordinator::BeginCheckpointUpload(
    const dino::v1::CheckpointUploadHeader& header, const std::string& credential) {
  dino::v1::CheckpointInfo info;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
    DINO_RETURN_IF_ERROR(workers_.CheckCredential(header.worker_id(), credential));
    DINO_RETURN_IF_ERROR(
        CurrentAttemptLocked(header.job_id(), header.attempt(), header.worker_id()).status());
  }
  info.set_job_id(header.job_id());
  info.set_attempt(header.attempt());
  info.set_step(header.step());
  info.set_epoch(header.epoch());
  info.set_size_bytes(header.size_bytes());
  info.set_loss(header.loss());
  info.set_center_norm(header.center_norm());
  info.set_teacher_entropy(header.teacher_entropy());
  info.set_batch_mean_entropy(header.batch_mean_entropy());
  info.set_kl(header.kl());
  if (header.has_knn_top1()) info.set_knn_top1(header.knn_top1());
  info.set_is_final(header.is_final());
  *info.mutable_create_time() = NowProto();
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointUpload> upload,
                        checkpoints_->BeginUpload(std::move(info)));
  upload->set_uploader(header.worker_id());
  return upload;
}

void Coordinator::AbandonCheckpointUpload(std::unique_ptr<CheckpointUpload> upload) {
  checkpoints_->Abandon(std::move(upload));
}

absl::StatusOr<dino::v1::CheckpointInfo> Coordinator::FinishCheckpointUpload(
    std::unique_ptr<CheckpointUpload> upload, const std::string& sha256) {
  const std::string job_id = upload->info().job_id();
  const int32_t attempt = upload->info().attempt();
  const std::string uploader = upload->uploader();
  // Verifying and fsyncing a large blob happens outside the lock; the fence and the row do not.
  DINO_ASSIGN_OR_RETURN(PreparedCheckpoint prepared,
                        checkpoints_->Prepare(std::move(upload), sha256));
  absl::MutexLock lock(&mu_);
  absl::StatusOr<JobEntry*> current = CurrentAttemptLocked(job_id, attempt, uploader);
  if (prepared.duplicate) {
    // A re-sent upload whose reply was lost. Its row is stored; the job's fields and event may not
    // be (a store written before they shared one transaction), so they are caught up here.
    const dino::v1::CheckpointInfo& info = prepared.row.info;
    if (current.ok() && (*current)->job.latest_checkpoint_id() != info.id()) {
      absl::StatusOr<StoredCheckpoint> latest = checkpoints_->Resolve(job_id, "latest");
      if (latest.ok() && latest->info.id() == info.id()) {
        DINO_RETURN_IF_ERROR(OnCheckpointLocked(**current, info, std::nullopt));
      }
    }
    return info;
  }
  if (!current.ok()) {
    // The attempt failed or the job was cancelled while the bytes were in flight: committing now
    // could make an old attempt's checkpoint the latest, or give a terminal job a checkpoint.
    checkpoints_->Discard(prepared);
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint of ", job_id, " step ", prepared.row.info.step(),
        " not committed: ", current.status().message()));
  }
  absl::Status status = OnCheckpointLocked(**current, prepared.row.info, prepared.row);
  if (!status.ok()) {
    checkpoints_->Discard(prepared);  // Neither row nor event was stored.
    return status;
  }
  return prepared.row.info;
}

absl::Status Coordinator::OnCheckpointLocked(JobEntry& entry, const dino::v1::CheckpointInfo& info,
                                             std::optional<StoredCheckpoint> row) {
  Job updated = entry.job;
  updated.set_latest_checkpoint_id(info.id());
  if (info.has_knn_top1()) updated.set_latest_knn_top1(info.knn_top1());
  if (info.has_knn_top1() &&
      (!updated.has_best_knn_top1() || info.knn_top1() > updated.best_knn_top1())) {
    updated.set_best_knn_top1(info.knn_top1());
  }
  JobEvent event;
  *event.mutable_checkpoint() = info;
  Effects effects;
  const bool inserted = row.has_value();
  effects.checkpoint = std::move(row);
  DINO_RETURN_IF_ERROR(CommitLocked(entry, std::move(updated), {event}, std::move(effects)));
  if (inserted && metrics_ != nullptr) metrics_->checkpoints_stored->Increment();
  // The checkpoint is committed whatever retention does; a deletion it could not finish is
  // finished by the next retention pass or by Recover.
  absl::Status status =
      checkpoints_
          ->ApplyRetention(entry.job.id(), entry.job.spec().checkpoint().keep_last(),
                           entry.job.spec().checkpoint().keep_best())
          .status();
  if (!status.ok()) {
    DINO_LOG(ERROR) << "retention after checkpoint " << info.id() << " of " << info.job_id()
                    << ": " << status;
  }
  return absl::OkStatus();
}

}  // namespace dino::server
