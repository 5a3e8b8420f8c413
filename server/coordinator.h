// Coordinator: the control plane's state machine. It owns the jobs (QUEUED -> RUNNING ->
// SUCCEEDED | FAILED | CANCELLED, with RESTARTING between attempts), the worker registry, gang
// scheduling, liveness, restarts from the latest checkpoint, collapse detection and the event
// streams. The gRPC handlers (job_service.h, worker_service.h) are thin adapters over it.
//
// Every change is written to the Store before it becomes visible (a Job and its new events in one
// transaction), so a coordinator killed at any point restarts with every acknowledged job, event
// and checkpoint. After Recover(), workers recorded as alive get one liveness timeout to
// reconnect; RUNNING attempts whose workers do not come back are failed and restarted.
//
// Time comes from the injected Clock: Tick() (called every second by the server, by hand in
// tests) declares silent workers dead and schedules, so liveness is tested with SimulatedClock
// and no sleeping.
//
// The worker table is a WorkerRegistry (worker_registry.h) and the live watches a WatchHub
// (watch_hub.h); the Coordinator decides what workers and events mean for jobs and keeps those two
// in step with the jobs under its one mutex.
//
// Ownership: borrows the Store, the CheckpointRegistry, the Clock and the metrics (may be null);
// all must outlive it. WorkerChannel and EventSink objects are shared with / borrowed from the
// stream reactors (see worker_channel.h and event_sink.h).
// Thread-safety: every public method is thread-safe (one mutex, which also guards the
// WorkerRegistry and the WatchHub). Channel and sink callbacks are invoked with that mutex held,
// so they must only queue work and never call back in.
// Failure: NOT_FOUND for unknown jobs, workers and checkpoints; INVALID_ARGUMENT for bad specs and
// requests (naming the field); FAILED_PRECONDITION for a report about an attempt that is no longer
// current; PERMISSION_DENIED for a caller acting on a job or a worker that is not its own;
// UNAVAILABLE after Shutdown(); store errors as they come.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dino/v1/coordinator.pb.h"
#include "dino/v1/job.pb.h"
#include "dino/v1/worker.pb.h"
#include "server/checkpoint_registry.h"
#include "server/collapse_detector.h"
#include "server/coordinator_metrics.h"
#include "server/event_sink.h"
#include "server/store.h"
#include "server/watch_hub.h"
#include "server/worker_channel.h"
#include "server/worker_registry.h"

namespace dino::server {

struct CoordinatorOptions {
  absl::Duration worker_timeout = absl::Seconds(15);
  absl::Duration heartbeat_interval = absl::Seconds(3);
  // Dead workers stay listed (include_dead) this long.
  absl::Duration dead_worker_retention = absl::Hours(1);
  // A submitter may have at most this many jobs QUEUED at once (0 = no limit); SubmitJob beyond it
  // is RESOURCE_EXHAUSTED naming the limit (--max-queued-per-submitter).
  int max_queued_per_submitter = 0;
  // The highest JobSpec.priority a caller other than an admin may set (--max-submitter-priority).
  // The default is the spec's default priority: submitters may lower theirs, not jump the queue.
  // Above it SubmitJob is PERMISSION_DENIED naming the flag. Without auth every caller is admin.
  int32_t max_submitter_priority = 0;
  // A job that does not fit holds the idle workers of its device kind (so smaller jobs cannot
  // starve it) for at most this long (--max-reservation-hold). Then it lets them go for as long
  // again, so that smaller jobs run, before it may hold them anew.
  absl::Duration max_reservation_hold = absl::Minutes(10);
};

// Who asks for a job-level change, as authenticated (server/auth_interceptor.h). Without auth
// every caller is the anonymous admin, so everything works as it always has.
struct JobCaller {
  std::string name = "anonymous";
  // Admin may cancel every job; anyone else cancels only the jobs `name` submitted.
  bool admin = true;
};

class Coordinator {
 public:
  Coordinator(Store* store, CheckpointRegistry* checkpoints, Clock* clock,
              CoordinatorOptions options, CoordinatorMetrics* metrics = nullptr);
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Loads jobs and workers from the Store and finishes interrupted checkpoint deletions. Call
  // once, before serving.
  absl::Status Recover();

  // ---- JobService ----
  // `caller.name` is recorded in Job.submitter (the token's name; "anonymous" without auth).
  // PERMISSION_DENIED for a priority above max_submitter_priority from a non-admin.
  // FAILED_PRECONDITION for a world_size larger than the workers of its device kind once that
  // fleet has settled: some are registered and the oldest of them registered at least one
  // worker_timeout ago. Before that (no worker of the kind yet, or a fleet still starting) the job
  // is accepted and its queued_reason says the fleet is too small; it never holds idle workers
  // while its gang is larger than the registered fleet.
  absl::StatusOr<dino::v1::SubmitJobResponse> SubmitJob(dino::v1::JobSpec spec,
                                                        const JobCaller& caller = JobCaller());
  absl::StatusOr<dino::v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<dino::v1::ListJobsResponse> ListJobs(const dino::v1::ListJobsRequest& request);
  // PERMISSION_DENIED when `caller` is not an admin and did not submit the job. The check and the
  // cancellation are one critical section: job ids are sequential, so a check made before the job
  // existed would let a submitter cancel the job someone else submits in between.
  absl::StatusOr<dino::v1::Job> CancelJob(const std::string& job_id, const std::string& reason,
                                          const JobCaller& caller = JobCaller());
  // Sends the events after `after_index` to `sink`, then every new one, until the job ends.
  // Returns a token for Unwatch, or 0 when the stream already ended (OnEnd was called). With
  // `max_backlog` > 0 the stored events are read in pages of that many, and when more than
  // `max_backlog` of them are to be sent, the first `max_backlog` are followed by
  // OnEnd(WatchResumeError(...)) (common/watch_resume.h: the caller resumes after the last index
  // it got).
  absl::StatusOr<int64_t> Watch(const std::string& job_id, int64_t after_index, bool skip_progress,
                                EventSink* sink, int64_t max_backlog = 0);
  void Unwatch(int64_t token);
  absl::StatusOr<dino::v1::GetJobMetricsResponse> GetJobMetrics(
      const dino::v1::GetJobMetricsRequest& request);
  absl::StatusOr<std::vector<dino::v1::CheckpointInfo>> ListCheckpoints(const std::string& job_id);
  // The checkpoint and a reader of its bytes from `offset` on, verified as they are read, for
  // DownloadCheckpoint.
  absl::StatusOr<std::pair<dino::v1::CheckpointInfo, std::unique_ptr<BlobReader>>> OpenCheckpoint(
      const std::string& job_id, const std::string& which, int64_t offset);
  std::vector<dino::v1::WorkerInfo> ListWorkers(bool include_dead);

  // ---- WorkerService ----
  // `credential` is the name of the caller's token ("anonymous" without auth). A worker id is
  // bound to the credential that registered it (WorkerInfo.registered_by): registering again with
  // it as previous_worker_id, its Hello, progress, checkpoint uploads and results from any other
  // credential are PERMISSION_DENIED naming the worker id. Heartbeats and Leaving travel on the
  // stream whose Hello was checked.
  absl::StatusOr<dino::v1::RegisterResponse> RegisterWorker(
      const dino::v1::RegisterRequest& request, const std::string& credential = "anonymous");
  // The Hello of a Connect stream. NOT_FOUND for an unknown or dead worker (register again).
  absl::Status AttachWorker(const std::string& worker_id, std::shared_ptr<WorkerChannel> channel,
                            const std::string& credential = "anonymous");
  // The stream ended; the worker stays alive until its liveness timeout.
  void DetachWorker(const std::string& worker_id, const WorkerChannel* channel);
  absl::Status Heartbeat(const std::string& worker_id, const dino::v1::Heartbeat& heartbeat);
  absl::StatusOr<dino::v1::ReportProgressResponse> ReportProgress(
      const dino::v1::ReportProgressRequest& request, const std::string& credential = "anonymous");
  absl::StatusOr<std::unique_ptr<CheckpointUpload>> BeginCheckpointUpload(
      const dino::v1::CheckpointUploadHeader& header, const std::string& credential = "anonymous");
  absl::StatusOr<dino::v1::CheckpointInfo> FinishCheckpointUpload(
      std::unique_ptr<CheckpointUpload> upload, const std::string& sha256);
  void AbandonCheckpointUpload(std::unique_ptr<CheckpointUpload> upload);
  // Whether a SUCCEEDED ends the job is decided by the rank the coordinator assigned to
  // request.worker_id in the current attempt (rank 0 ends it), never by request.rank.
  absl::Status ReportResult(const dino::v1::ReportResultRequest& request,
                            const std::string& credential = "anonymous");
  // The worker is shutting down (WorkerMessage.Leaving, after SIGTERM): nothing more is scheduled
  // on it, a failure of its current attempt is a preemption (FAILURE_REASON_PREEMPTED: retried,
  // not counted against max_restarts), and it is declared gone when its stream ends.
  // NOT_FOUND for an unknown or dead worker. In coordinator_liveness.cc.
  absl::Status WorkerLeaving(const std::string& worker_id, const std::string& reason);

  // ---- Time ----
  // Declares workers silent for longer than worker_timeout dead (failing their attempts) and
  // schedules queued jobs. Every scheduling pass (here, and after a submission, a cancellation
  // or a change of the fleet) sets Job.queued_reason of each job it leaves waiting.
  void Tick();
  // Ends every worker stream and watch with UNAVAILABLE and refuses new work. Idempotent.
  void Shutdown();

  const CoordinatorOptions& options() const { return options_; }

 private:
  struct JobEntry {
    dino::v1::Job job;
    int64_t seq = 0;  // Submission order.
    absl::Time queued_since;  // When it last entered QUEUED or RESTARTING.
    // While RUNNING: when the current attempt started or last reported a new step (or when this
    // coordinator recovered it). The stall deadline counts from here.
    absl::Time progress_since;
    // When its current hold on idle workers (the scheduler's reservation) began; InfinitePast
    // when it holds none. In memory only, like the reservation itself.
    absl::Time holding_since = absl::InfinitePast();
    // After a hold that reached max_reservation_hold: it may not hold workers again before this.
    absl::Time hold_again_after = absl::InfinitePast();
  };
  // What a job transition changes besides the job itself. CommitLocked stores it in the job's
  // transaction and applies it in memory only once that transaction committed; the messages go
  // out last, so no worker is told to stop an attempt that the store still has running.
  struct Effects {
    std::vector<dino::v1::WorkerInfo> workers;  // The new records of these workers.
    std::optional<StoredCheckpoint> checkpoint;  // A checkpoint row to insert.
    std::vector<std::pair<std::string, dino::v1::CoordinatorMessage>> messages;  // worker id, msg
    // Workers told to drop an attempt: (worker id, job id, attempt). See WorkerRegistry::dropping.
    std::vector<std::tuple<std::string, std::string, int32_t>> dropping;
  };
  using WorkerEntry = WorkerRegistry::Worker;

  // Writes `updated`, `events` (indices assigned here) and `effects` to the store in one
  // transaction, then makes them current, delivers the events and sends the effects' messages. On
  // a store error nothing changes in memory and nothing is sent.
  absl::Status CommitLocked(JobEntry& entry, dino::v1::Job updated,
                            std::vector<dino::v1::JobEvent> events, Effects effects = Effects())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  dino::v1::JobEvent StateEventLocked(const dino::v1::Job& job, dino::v1::JobState to,
                                      dino::v1::FailureReason reason, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // SubmitJob's check that the gang could form from the settled fleet (see SubmitJob).
  absl::Status CheckGangCanFormLocked(const dino::v1::JobSpec& spec)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The Assignment of `rank` in the job's current attempt; `resume` when already resolved.
  dino::v1::CoordinatorMessage AssignmentLocked(const dino::v1::Job& job, int32_t rank,
                                                const dino::v1::CheckpointInfo* resume)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartAttemptLocked(JobEntry& entry, const std::vector<std::string>& worker_ids)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the current attempt of `job` with `state`. Adds to `effects`: its workers become idle
  // (unless dead), and the ranks other than `except_worker` get `notice` (Abort or Cancel) when it
  // is set. The caller commits `job` with `effects`.
  void EndAttemptLocked(dino::v1::Job& job, dino::v1::AttemptState state,
                        dino::v1::FailureReason reason, const std::string& message,
                        const std::string& except_worker,
                        std::optional<dino::v1::CoordinatorMessage> notice, Effects* effects)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fails the current attempt and restarts the job or fails it, by the retry policy. On an error
  // nothing changed: the attempt still runs.
  absl::Status FailAttemptLocked(JobEntry& entry, dino::v1::FailureReason reason,
                                 const std::string& message, const std::string& except_worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Declares the worker dead, failing its attempt first. When the attempt cannot be failed (a
  // store error) the worker is left as it was and the error returned: the next Tick tries again,
  // so a job is never left RUNNING on a dead rank.
  absl::Status MarkDeadLocked(WorkerEntry& worker, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recover's check of jobs against workers: a RUNNING job whose current attempt has a rank that
  // the workers' records do not show busy in it (a crash between the two writes, by a coordinator
  // older than the one-transaction commit) is failed, to be restarted.
  void ReconcileRunningJobsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tick's progress deadline: fails with FAILURE_REASON_STALLED each RUNNING attempt that reported
  // no new step for its spec's progress_timeout_seconds.
  void FailStalledAttemptsLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job whose current, running attempt `attempt` includes `worker_id`, or FAILED_PRECONDITION.
  absl::StatusOr<JobEntry*> CurrentAttemptLocked(const std::string& job_id, int32_t attempt,
                                                 const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<JobEntry*> FindJobLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes `info` the job's latest checkpoint: the job's fields and a checkpoint event, committed
  // with `row` when it is set (a new checkpoint), then retention.
  absl::Status OnCheckpointLocked(JobEntry& entry, const dino::v1::CheckpointInfo& info,
                                  std::optional<StoredCheckpoint> row)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when a rank of the job's current attempt runs on a leaving worker.
  bool AttemptHasLeavingWorkerLocked(const dino::v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  google::protobuf::Timestamp NowProto() const;

  Store* const store_;
  CheckpointRegistry* const checkpoints_;
  Clock* const clock_;
  const CoordinatorOptions options_;
  CoordinatorMetrics* const metrics_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, JobEntry> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> jobs_by_request_id_ ABSL_GUARDED_BY(mu_);
  WorkerRegistry workers_ ABSL_GUARDED_BY(mu_);
  WatchHub watches_ ABSL_GUARDED_BY(mu_);
  // Job ids are allocated here rather than from a Store sequence: a job is persisted with its id
  // in one transaction, so the largest stored id bounds every id ever handed out, and SubmitJob
  // costs one fsync instead of two.
  int64_t next_job_seq_ ABSL_GUARDED_BY(mu_) = 1;
};

// True when an attempt that failed for `reason` may be retried.
bool IsRetryable(dino::v1::FailureReason reason);
// The restarts that count against max_restarts: attempts after the first, except those that
// followed a preempted attempt (FAILURE_REASON_PREEMPTED). This is Job.restarts.
int32_t CountedRestarts(const dino::v1::Job& job);
bool IsTerminal(dino::v1::JobState state);

}  // namespace dino::server
