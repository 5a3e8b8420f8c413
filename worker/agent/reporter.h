// Reporter: rank 0's outbox to the coordinator. Progress reports, checkpoint uploads and the
// final result are queued by the training thread and sent in order by one background thread,
// which retries transient failures with backoff, so training never blocks on the coordinator and
// nothing is lost across a coordinator restart.
//
// Progress is batched: every send carries all the statistics not yet acknowledged. A checkpoint
// whose file was pruned before it could be sent is skipped (a newer one supersedes it). The
// result is sent only after every queued checkpoint went through.
//
// A checkpoint the coordinator refuses for good (over one of its size limits: IsLimitRefusal) is
// not retried: the refusal is kept (refusal()), the runner stops training, and the result goes out
// as FAILED with FAILURE_REASON_COORDINATOR_LIMIT and the refusal's message, which names the flag.
//
// Ownership: borrows the link, the file system (to see whether a checkpoint file still exists),
// the clock (backoff between retries), the attempt's CancelToken (may be null; cancelling it ends
// the call in flight and stops the reporter) and the worker-id source. Thread-safety: all methods
// may be called from any thread. Failure: a FAILED_PRECONDITION answer (the attempt is no longer
// current) marks the reporter stale; the runner then drops the attempt.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "worker/agent/cancel_token.h"
#include "worker/agent/worker_link.h"

namespace dino::agent {

class Reporter {
 public:
  Reporter(WorkerLink* link, std::string job_id, int attempt,
           std::function<std::string()> worker_id, FileSystem* fs, Clock* clock,
           CancelToken* cancel);
  ~Reporter();  // Stops without waiting for unsent items (see Drain).

  void AddProgress(const dino::v1::StepStats& stats);
  void AddCheckpoint(dino::v1::CheckpointUploadHeader header, std::string path);
  void SetResult(dino::v1::ReportResultRequest result);
  // Called on the reporter's thread after each checkpoint upload the coordinator accepted, with
  // its wall time on the clock (retries included) and its size in bytes.
  void SetUploadObserver(std::function<void(double seconds, int64_t bytes)> observer);

  // Waits until everything queued (result included) is sent, the reporter is stale, or `stop`
  // becomes true (polled) or the CancelToken is cancelled. Returns the first non-transient error,
  // if any.
  absl::Status Drain(const std::function<bool()>& stop);

  bool cancel_requested() const;
  bool stale() const;
  // The coordinator's first permanent refusal of an upload; OK while there is none.
  absl::Status refusal() const;

 private:
  struct Upload {
    dino::v1::CheckpointUploadHeader header;
    std::string path;
  };
  void Loop();
  absl::Status SendProgress(std::vector<dino::v1::StepStats> stats);
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool StoppingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  WorkerLink* const link_;
  const std::string job_id_;
  const int attempt_;
  const std::function<std::string()> worker_id_;
  FileSystem* const fs_;
  Clock* const clock_;
  CancelToken* const cancel_;

  mutable absl::Mutex mu_;
  std::vector<dino::v1::StepStats> progress_ ABSL_GUARDED_BY(mu_);
  std::deque<Upload> uploads_ ABSL_GUARDED_BY(mu_);
  bool has_result_ ABSL_GUARDED_BY(mu_) = false;
  dino::v1::ReportResultRequest result_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stale_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
  std::function<void(double, int64_t)> upload_observer_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace dino::agent
