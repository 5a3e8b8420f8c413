// AttemptRunner: runs one Assignment (one rank of one attempt of a job) on its own thread:
//   1. converts the JobSpec into RunOptions;
//   2. fetches the resume checkpoint (a cached copy with the same sha256, else a verified
//   download);
//   3. joins the c10d process group of the attempt (world_size > 1);
//   4. trains through run::TrainingRun; rank 0 queues progress, checkpoints and the k-NN result on
//      a Reporter;
//   5. reports the outcome (every rank), with a FailureReason the coordinator's retry policy uses.
// Cancel stops training at the next step boundary; Abort also breaks a collective in flight.
// A checkpoint the coordinator refuses for good (over --max-checkpoint-bytes) stops training too,
// and the rank reports FAILED with FAILURE_REASON_COORDINATOR_LIMIT, naming the flag.
// Preempt (the worker got SIGTERM) stops at the next step boundary too; rank 0 first uploads the
// checkpoint that was due (while its peers still wait in the next collective), then the rank
// reports FAILED with FAILURE_REASON_PREEMPTED.
//
// Abort also cancels the attempt's calls to the coordinator in flight (an upload, a download), so
// that destroying an aborted runner never waits on the network.
//
// Ownership: the Agent owns runners; a runner borrows the link, the file system and the clock.
// Destruction aborts and joins. Thread-safety: Cancel/Abort/running/done may be called from any
// thread.
// Failure: reported to the coordinator, never thrown; `final_status()` keeps it for logs/tests.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "common/path_confinement.h"
#include "dino/v1/worker.pb.h"
#include "worker/agent/cancel_token.h"
#include "worker/agent/reporter.h"
#include "worker/agent/training.h"
#include "worker/agent/worker_link.h"
#include "worker/agent/worker_metrics.h"

namespace dino::agent {

struct RunnerOptions {
  std::string device = "cpu";
  int threads = 0;
  std::string work_dir;  // The worker's directory; attempts go to <work_dir>/<job>/attempt-<n>.
  int rendezvous_port = 29500;  // Where this worker serves the TCPStore when it is rank 0.
  // The address this worker advertises (--advertise-host): its Gloo transport binds there, so
  // peers on other hosts reach it at the address the coordinator gave them. Empty: chosen by
  // dist::DistOptions (loopback for a loopback master, else the hostname's address).
  std::string bind_host;
  // --data-roots: the spec's data paths must resolve under these before anything is read
  // (CheckDataPaths); a violation fails the attempt with FAILURE_REASON_BAD_DATASET (not retried).
  PathConfinement data_roots = PathConfinement::Unconfined();
  absl::Duration collective_timeout = absl::Seconds(60);
  absl::Duration rendezvous_timeout = absl::Seconds(120);
  WorkerMetrics* metrics = nullptr;  // Borrowed; null exports nothing.
  // What trains; null means RealTraining (training.h). Tests play the run's callbacks instead.
  TrainFunction train;
};

// The failure reason for a Status from a run: its FailureKind (worker/dino/failure_kind.h), else
// its code. Never its message.
dino::v1::FailureReason ClassifyFailure(const absl::Status& status);

class AttemptRunner {
 public:
  AttemptRunner(dino::v1::Assignment assignment, RunnerOptions options, WorkerLink* link,
                std::function<std::string()> worker_id, FileSystem* fs, Clock* clock);
  ~AttemptRunner();

  void Start();
  void Cancel(const std::string& reason);
  void Abort(const std::string& reason);
  void Preempt(const std::string& reason);

  const dino::v1::Assignment& assignment() const { return assignment_; }
  dino::v1::RunningAttempt running() const;
  bool done() const { return done_.load(); }
  absl::Status final_status() const;

 private:
  void Main();
  absl::Status Train();
  absl::StatusOr<std::string> FetchResumeCheckpoint();
  bool ShouldStop() const;
  void Report(dino::v1::AttemptOutcome outcome, const absl::Status& status, int64_t step,
              std::optional<double> knn_top1);

  const dino::v1::Assignment assignment_;
  const RunnerOptions options_;
  WorkerLink* const link_;
  const std::function<std::string()> worker_id_;
  FileSystem* const fs_;
  Clock* const clock_;
  std::string attempt_dir_;

  std::atomic<bool> cancel_{false};
  std::atomic<bool> abort_{false};
  std::atomic<bool> preempt_{false};
  std::atomic<bool> done_{false};
  std::atomic<int64_t> step_{0};
  CancelToken abort_token_;  // Cancelled by Abort: calls in flight and collectives end.
  std::thread thread_;

  mutable absl::Mutex mu_;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Reporter> reporter_;
  std::shared_ptr<WorkerMetrics::Assignment> metrics_;  // Set by Main when options_.metrics.
};

}  // namespace dino::agent
