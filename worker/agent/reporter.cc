#include "worker/agent/reporter.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "worker/agent/retry.h"

namespace dino::agent {

Reporter::Reporter(WorkerLink* link, std::string job_id, int attempt,
                   std::function<std::string()> worker_id, FileSystem* fs, Clock* clock,
                   CancelToken* cancel)
    : link_(link),
      job_id_(std::move(job_id)),
      attempt_(attempt),
      worker_id_(std::move(worker_id)),
      fs_(fs),
      clock_(clock),
      cancel_(cancel) {
  thread_ = std::thread([this] { Loop(); });
}

Reporter::~Reporter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void Reporter::AddProgress(const dino::v1::StepStats& stats) {
  absl::MutexLock lock(&mu_);
  progress_.push_back(stats);
}

void Reporter::AddCheckpoint(dino::v1::CheckpointUploadHeader header, std::string path) {
  absl::MutexLock lock(&mu_);
  uploads_.push_back({std::move(header), std::move(path)});
}

void Reporter::SetUploadObserver(std::function<void(double seconds, int64_t bytes)> observer) {
  absl::MutexLock lock(&mu_);
  upload_observer_ = std::move(observer);
}

void Reporter::SetResult(dino::v1::ReportResultRequest result) {
  absl::MutexLock lock(&mu_);
  result_ = std::move(result);
  has_result_ = true;
}

bool Reporter::cancel_requested() const {
  absl::MutexLock lock(&mu_);
  return cancel_requested_;
}

bool Reporter::stale() const {
  absl::MutexLock lock(&mu_);
  return stale_;
}

absl::Status Reporter::refusal() const {
  absl::MutexLock lock(&mu_);
  return refusal_;
}

bool Reporter::StoppingLocked() const {
  return stopping_ || stale_ || (cancel_ != nullptr && cancel_->cancelled());
}

bool Reporter::HasWorkLocked() const {
  return !progress_.empty() || !uploads_.empty() || has_result_;
}

absl::Status Reporter::Drain(const std::function<bool()>& stop) {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stale_ || (!busy_ && !HasWorkLocked());
      };
      if (mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Milliseconds(100))) {
        if (stale_) {
          return absl::FailedPreconditionError(
              absl::StrCat(job_id_, " attempt ", attempt_, " is no longer current"));
        }
        return error_;
      }
    }
    if ((stop && stop()) || (cancel_ != nullptr && cancel_->cancelled())) {
      return absl::CancelledError("stopped while reporting");
    }
  }
}

absl::Status Reporter::SendProgress(std::vector<dino::v1::StepStats> stats) {
  dino::v1::ReportProgressRequest request;
  request.set_worker_id(worker_id_());
  request.set_job_id(job_id_);
  request.set_attempt(attempt_);
  for (auto& s : stats) *request.add_stats() = std::move(s);
  absl::StatusOr<dino::v1::ReportProgressResponse> response =
      link_->ReportProgress(request, cancel_);
  if (!response.ok()) return response.status();
  if (response->cancel_requested()) {
    absl::MutexLock lock(&mu_);
    cancel_requested_ = true;
  }
  return absl::OkStatus();
}

void Reporter::Loop() {
  auto stopping = [this] {
    absl::MutexLock lock(&mu_);
    return StoppingLocked();
  };
  while (true) {
    std::vector<dino::v1::StepStats> progress;
    std::optional<Upload> upload;
    std::optional<dino::v1::ReportResultRequest> result;
    {
      absl::MutexLock lock(&mu_);
      busy_ = false;
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || stale_ || HasWorkLocked();
      };
      // The token has no way to wake this wait: poll it.
      while (!mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100))) {
        if (StoppingLocked()) return;
      }
      if (StoppingLocked()) return;
      busy_ = true;
      // Progress first (cheap), then checkpoints in order, then the result once all are in.
      if (!progress_.empty()) {
        progress.swap(progress_);
      } else if (!uploads_.empty()) {
        upload = uploads_.front();
      } else {
        result = result_;
        if (!refusal_.ok() && result->outcome() != dino::v1::ATTEMPT_OUTCOME_FAILED) {
          // A checkpoint the job needed never reached the coordinator: the attempt failed.
          result->set_outcome(dino::v1::ATTEMPT_OUTCOME_FAILED);
          result->set_failure_reason(dino::v1::FAILURE_REASON_COORDINATOR_LIMIT);
          result->set_message(std::string(refusal_.message()));
        }
      }
    }
    absl::Status status;
    std::string what;
    if (!progress.empty()) {
      what = "progress report";
      status = RetryTransient(
          what, [&] { return SendProgress(progress); }, stopping, clock_);
    } else if (upload.has_value()) {
      what = absl::StrCat("checkpoint upload of step ", upload->header.step());
      const absl::Time start = clock_->Now();
      int64_t bytes = 0;
      status = RetryTransient(
          what,
          [&] {
            // Pruned by retention before it could be sent: a newer checkpoint supersedes it.
            if (!fs_->Exists(upload->path)) {
              return absl::NotFoundError(absl::StrCat("checkpoint ", upload->path, " is gone"));
            }
            upload->header.set_worker_id(worker_id_());
            absl::StatusOr<dino::v1::CheckpointInfo> info =
                link_->UploadCheckpoint(upload->header, upload->path, cancel_);
            if (info.ok()) bytes = info->size_bytes();
            return info.status();
          },
          stopping, clock_);
      if (status.ok()) {
        std::function<void(double, int64_t)> observer;
        {
          absl::MutexLock lock(&mu_);
          observer = upload_observer_;
        }
        if (observer) observer(absl::ToDoubleSeconds(clock_->Now() - start), bytes);
      }
      if (absl::IsNotFound(status)) {
        DINO_LOG(WARNING) << what << " skipped: " << status;
        status = absl::OkStatus();
      }
    } else {
      what = "result report";
      status = RetryTransient(
          what,
          [&] {
            result->set_worker_id(worker_id_());
            return link_->ReportResult(*result, cancel_);
          },
          stopping, clock_);
    }
    absl::MutexLock lock(&mu_);
    if (absl::IsCancelled(status) && StoppingLocked()) return;
    if (absl::IsFailedPrecondition(status)) {
      DINO_LOG(WARNING) << what << ": " << status << "; dropping the attempt";
      stale_ = true;
      return;
    }
    if (!status.ok()) {
      DINO_LOG(ERROR) << what << " failed: " << status;
      if (error_.ok()) error_ = status;
      if (upload.has_value() && IsLimitRefusal(status) && refusal_.ok()) refusal_ = status;
    }
    // Acknowledged (or permanently failed): remove it from the queue.
    if (upload.has_value()) {
      uploads_.pop_front();
    } else if (result.has_value()) {
      has_result_ = false;
    }
  }
}

}  // namespace dino::agent
