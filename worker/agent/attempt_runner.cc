#include "worker/agent/attempt_runner.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "proto/dino/time_util.h"
#include "worker/agent/retry.h"
#include "worker/agent/spec_convert.h"
#include "worker/dino/failure_kind.h"
#include "worker/run/training_run.h"

namespace dino::agent {
namespace {

dino::v1::StepStats ToProto(const run::Progress& p) {
  dino::v1::StepStats s;
  s.set_step(p.step.step);
  s.set_epoch(p.step.epoch);
  s.set_total_steps(p.total_steps);
  s.set_loss(p.step.loss);
  s.set_lr(p.step.lr);
  s.set_weight_decay(p.step.weight_decay);
  s.set_teacher_momentum(p.step.teacher_momentum);
  s.set_teacher_temp(p.step.teacher_temp);
  s.set_teacher_entropy(p.step.teacher_entropy);
  s.set_batch_mean_entropy(p.step.batch_mean_entropy);
  s.set_kl(p.step.kl_teacher_student);
  s.set_center_norm(p.step.center_norm);
  s.set_images_per_second(p.images_per_second);
  s.set_data_wait_fraction(p.data_wait_fraction);
  *s.mutable_time() = ToTimestampProto(absl::Now());
  return s;
}

}  // namespace

dino::v1::FailureReason ClassifyFailure(const absl::Status& status) {
  switch (GetFailureKind(status)) {
    case FailureKind::kData:
      return dino::v1::FAILURE_REASON_BAD_DATASET;
    case FailureKind::kCheckpoint:
      return dino::v1::FAILURE_REASON_CORRUPT_CHECKPOINT;
    case FailureKind::kConfig:
      return dino::v1::FAILURE_REASON_INVALID_SPEC;
    case FailureKind::kNonFiniteLoss:
      return dino::v1::FAILURE_REASON_NON_FINITE_LOSS;
    case FailureKind::kCoordinatorLimit:
      return dino::v1::FAILURE_REASON_COORDINATOR_LIMIT;
    case FailureKind::kTrain:
    case FailureKind::kUnknown:
      break;
  }
  if (absl::IsResourceExhausted(status)) return dino::v1::FAILURE_REASON_OUT_OF_MEMORY;
  if (absl::IsAborted(status) || absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
    return dino::v1::FAILURE_REASON_COLLECTIVE_ABORT;
  }
  return dino::v1::FAILURE_REASON_INTERNAL;
}

AttemptRunner::AttemptRunner(dino::v1::Assignment assignment, RunnerOptions options,
                             WorkerLink* link, std::function<std::string()> worker_id,
                             FileSystem* fs, Clock* clock)
    : assignment_(std::move(assignment)),
      options_(std::move(options)),
      link_(link),
      worker_id_(std::move(worker_id)),
      fs_(fs),
      clock_(clock) {
  attempt_dir_ = absl::StrCat(options_.work_dir, "/", assignment_.job_id(), "/attempt-",
                              assignment_.attempt(), "-rank-", assignment_.rank());
}

AttemptRunner::~AttemptRunner() {
  Abort("worker shutting down");
  if (thread_.joinable()) thread_.join();
}

void AttemptRunner::Start() {
  thread_ = std::thread([this] { Main(); });
}

void AttemptRunner::Cancel(const std::string& reason) {
  if (!cancel_.exchange(true)) {
    DINO_LOG(INFO) << assignment_.job_id() << " attempt " << assignment_.attempt() << ": cancel ("
                   << reason << ")";
  }
}

void AttemptRunner::Abort(const std::string& reason) {
  if (abort_.exchange(true)) return;
  DINO_LOG(INFO) << assignment_.job_id() << " attempt " << assignment_.attempt() << ": abort ("
                 << reason << ")";
  abort_token_.Cancel();
}

void AttemptRunner::Preempt(const std::string& reason) {
  if (!preempt_.exchange(true)) {
    DINO_LOG(INFO) << assignment_.job_id() << " attempt " << assignment_.attempt()
                   << ": preempted (" << reason << "); stopping at the next step boundary";
  }
}

dino::v1::RunningAttempt AttemptRunner::running() const {
  dino::v1::RunningAttempt r;
  r.set_job_id(assignment_.job_id());
  r.set_attempt(assignment_.attempt());
  r.set_rank(assignment_.rank());
  r.set_step(step_.load());
  return r;
}

absl::Status AttemptRunner::final_status() const {
  absl::MutexLock lock(&mu_);
  return final_status_;
}

bool AttemptRunner::ShouldStop() const {
  return cancel_.load() || abort_.load() || preempt_.load() ||
         (reporter_ != nullptr &&
          (reporter_->cancel_requested() || reporter_->stale() || !reporter_->refusal().ok()));
}

void AttemptRunner::Main() {
  if (options_.metrics != nullptr) {
    metrics_ = options_.metrics->BeginAssignment(assignment_.job_id(), assignment_.rank());
  }
  if (assignment_.rank() == 0) {
    reporter_ = std::make_unique<Reporter>(link_, assignment_.job_id(), assignment_.attempt(),
                                           worker_id_, fs_, clock_, &abort_token_);
    if (metrics_ != nullptr) {
      reporter_->SetUploadObserver(
          [m = metrics_](double seconds, int64_t bytes) { m->ObserveUpload(seconds, bytes); });
    }
  }
  absl::Status status = Train();
  if (metrics_ != nullptr) metrics_->End();  // Before done_: the next assignment starts clean.
  {
    absl::MutexLock lock(&mu_);
    final_status_ = status;
  }
  if (!status.ok()) {
    DINO_LOG(WARNING) << assignment_.job_id() << " attempt " << assignment_.attempt() << " rank "
                      << assignment_.rank() << ": " << status;
  }
  done_.store(true);
}

void AttemptRunner::Report(dino::v1::AttemptOutcome outcome, const absl::Status& status,
                           int64_t step, std::optional<double> knn_top1) {
  dino::v1::ReportResultRequest result;
  result.set_job_id(assignment_.job_id());
  result.set_attempt(assignment_.attempt());
  result.set_rank(assignment_.rank());
  result.set_outcome(outcome);
  result.set_final_step(step);
  if (!status.ok()) {
    result.set_failure_reason(preempt_.load() ? dino::v1::FAILURE_REASON_PREEMPTED
                                              : ClassifyFailure(status));
    result.set_message(std::string(status.message()));
  }
  if (knn_top1.has_value()) result.set_knn_top1(*knn_top1);
  if (reporter_ != nullptr) {
    reporter_->SetResult(result);
    absl::Status drained = reporter_->Drain([this] { return abort_.load(); });
    if (!drained.ok()) DINO_LOG(WARNING) << "reporting the result: " << drained;
    return;
  }
  absl::Status sent = RetryTransient(
      "result report",
      [&] {
        result.set_worker_id(worker_id_());
        return link_->ReportResult(result, &abort_token_);
      },
      [this] { return abort_.load(); }, clock_);
  if (!sent.ok()) DINO_LOG(WARNING) << "reporting the result: " << sent;
}

absl::StatusOr<std::string> AttemptRunner::FetchResumeCheckpoint() {
  const dino::v1::CheckpointInfo& ckpt = assignment_.resume_checkpoint();
  const std::string cache = absl::StrCat(
      options_.work_dir, "/cache/", ckpt.sha256().empty() ? ckpt.id() : ckpt.sha256(), ".dino");
  if (fs_->Exists(cache)) {
    absl::StatusOr<std::string> bytes = fs_->ReadFile(cache);
    if (bytes.ok() && (ckpt.sha256().empty() || Sha256::Of(*bytes) == ckpt.sha256())) {
      DINO_LOG(INFO) << "resume checkpoint " << ckpt.id() << " found in the cache";
      return cache;
    }
    DINO_LOG(WARNING) << "cached " << cache << " does not verify; downloading again";
  }
  absl::Status s = RetryTransient(
      absl::StrCat("download of checkpoint ", ckpt.id()),
      [&] {
        return link_->DownloadCheckpoint(assignment_.job_id(), ckpt.id(), ckpt.sha256(), cache,
                                         &abort_token_);
      },
      [this] { return abort_.load() || cancel_.load(); }, clock_);
  if (!s.ok()) {
    return WithFailureKind(std::move(s), FailureKind::kCheckpoint);
  }
  return cache;
}

absl::Status AttemptRunner::Train() {
  LocalResources local;
  local.device = options_.device;
  local.threads = options_.threads;
  local.work_dir = attempt_dir_;
  local.data_roots = options_.data_roots;
  if (absl::Status confined = CheckDataPaths(assignment_.spec(), options_.data_roots);
      !confined.ok()) {
    confined = WithFailureKind(std::move(confined), FailureKind::kData);  // BAD_DATASET.
    Report(dino::v1::ATTEMPT_OUTCOME_FAILED, confined, 0, std::nullopt);
    return confined;
  }
  absl::StatusOr<run::RunOptions> run_options = RunOptionsFromSpec(assignment_.spec(), local);
  if (!run_options.ok()) {
    const absl::Status s = WithFailureKind(run_options.status(), FailureKind::kConfig);
    Report(dino::v1::ATTEMPT_OUTCOME_FAILED, s, 0, std::nullopt);
    return s;
  }
  if (assignment_.has_resume_checkpoint() && !assignment_.resume_checkpoint().id().empty()) {
    absl::StatusOr<std::string> path = FetchResumeCheckpoint();
    if (!path.ok()) {
      Report(dino::v1::ATTEMPT_OUTCOME_FAILED, path.status(), 0, std::nullopt);
      return path.status();
    }
    run_options->resume_from = *path;
  }

  TrainRequest request;
  request.assignment = &assignment_;
  request.options = &options_;
  request.run_options = *std::move(run_options);
  request.fs = fs_;
  request.abort = &abort_token_;
  request.on_start = [this](int64_t step) { step_.store(step); };
  request.before_teardown = [this] {
    if (preempt_.load() && reporter_ != nullptr) {
      // Upload the checkpoint that was due before leaving the gang: the peers are still waiting
      // in the next collective, so the attempt stays current until this rank lets go.
      absl::Status flushed = reporter_->Drain([this] { return abort_.load(); });
      if (!flushed.ok()) DINO_LOG(WARNING) << "uploading before leaving: " << flushed;
    }
  };
  run::RunCallbacks& callbacks = request.callbacks;
  callbacks.should_stop = [this] { return ShouldStop(); };
  if (metrics_ != nullptr) {
    callbacks.on_step = [this](const run::StepReport& r) { metrics_->ObserveStep(r); };
  }
  callbacks.on_progress = [this](const run::Progress& p) {
    step_.store(p.step.step + 1);
    if (reporter_ != nullptr) reporter_->AddProgress(ToProto(p));
  };
  callbacks.on_checkpoint = [this](const run::LocalCheckpoint& c) {
    step_.store(c.step);
    if (reporter_ == nullptr) return absl::OkStatus();
    dino::v1::CheckpointUploadHeader h;
    h.set_job_id(assignment_.job_id());
    h.set_attempt(assignment_.attempt());
    h.set_step(c.step);
    h.set_epoch(c.epoch);
    h.set_loss(c.last_step.loss);
    h.set_center_norm(c.last_step.center_norm);
    h.set_teacher_entropy(c.last_step.teacher_entropy);
    h.set_batch_mean_entropy(c.last_step.batch_mean_entropy);
    h.set_kl(c.last_step.kl_teacher_student);
    if (c.knn_top1.has_value()) h.set_knn_top1(*c.knn_top1);
    h.set_is_final(c.final);
    reporter_->AddCheckpoint(h, c.path);
    return absl::OkStatus();
  };
  const TrainFunction& train = options_.train ? options_.train : TrainFunction(RealTraining);
  absl::StatusOr<run::RunResult> result = train(std::move(request));

  if (abort_.load() || (reporter_ != nullptr && reporter_->stale())) {
    return absl::AbortedError("attempt aborted");  // No result is expected after an abort.
  }
  if (absl::Status refused = reporter_ != nullptr ? reporter_->refusal() : absl::OkStatus();
      !refused.ok()) {
    // Training without a way to keep its checkpoints would only waste the gang's time.
    refused = WithFailureKind(std::move(refused), FailureKind::kCoordinatorLimit);
    Report(dino::v1::ATTEMPT_OUTCOME_FAILED, refused, step_.load(), std::nullopt);
    return refused;
  }
  if (preempt_.load() && (!result.ok() || result->cancelled)) {
    const absl::Status preempted = absl::UnavailableError(absl::StrCat(
        "the worker is shutting down (preempted at step ", step_.load(), ")",
        result.ok() ? "" : absl::StrCat("; the run ended with: ", result.status().ToString())));
    Report(dino::v1::ATTEMPT_OUTCOME_FAILED, preempted, step_.load(), std::nullopt);
    return preempted;
  }
  if (!result.ok()) {
    Report(dino::v1::ATTEMPT_OUTCOME_FAILED, result.status(), step_.load(), std::nullopt);
    return result.status();
  }
  std::optional<double> knn;
  if (result->knn.has_value()) knn = result->knn->top1;
  step_.store(result->steps);
  Report(
      result->cancelled ? dino::v1::ATTEMPT_OUTCOME_CANCELLED : dino::v1::ATTEMPT_OUTCOME_SUCCEEDED,
      absl::OkStatus(), result->steps, knn);
  return absl::OkStatus();
}

}  // namespace dino::agent
