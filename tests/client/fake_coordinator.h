// FakeCoordinator: an in-memory JobService on a loopback port, for the client's tests.
//
// It keeps jobs, events, checkpoints (with their bytes), metrics and workers that a test puts in,
// implements each RPC the way coordinator.proto documents it (idempotent SubmitJob by
// request_id, paginated ListJobs, WatchJob that replays after an index and then follows, chunked
// DownloadCheckpoint from an offset), and has knobs to inject the failures the client must handle:
// a lost SubmitJob response, UNAVAILABLE calls, a corrupted or broken download, and a restart
// (Stop + Start on the same port) while a watch is open.
//
// Thread-safety: every method may be called from the test thread while gRPC threads serve.
// Failure: Start() aborts the test (ASSERT) if the port cannot be bound.
#pragma once

#include <grpcpp/server.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dino/v1/coordinator.grpc.pb.h"

namespace dino::client::testing {

class FakeJobService final : public dino::v1::JobService::Service {
 public:
  // --- State the tests set up ---
  void AddJob(const dino::v1::Job& job);
  // Appends an event to the job's history (index assigned) and wakes watchers. A state change
  // also updates the job's state.
  void AppendEvent(const std::string& job_id, dino::v1::JobEvent event);
  void AddCheckpoint(const dino::v1::CheckpointInfo& info, const std::string& bytes);
  void SetMetrics(const std::string& job_id, const dino::v1::GetJobMetricsResponse& metrics);
  void AddWorker(const dino::v1::WorkerInfo& worker);

  // --- Failure knobs ---
  // The next `n` SubmitJob calls store the job and then answer UNAVAILABLE (a lost response).
  void LoseSubmitResponses(int n);
  // The next `n` unary calls answer UNAVAILABLE before doing anything.
  void FailNextCalls(int n);
  // Downloads flip one byte of the first chunk.
  void CorruptDownloads(bool corrupt);
  // The next download stream breaks with UNAVAILABLE after `chunks` chunks.
  void BreakNextDownloadAfter(int chunks);
  void SetChunkSize(int bytes);
  void SetPageSize(int jobs);
  // While set, open WatchJob streams end with UNAVAILABLE (a coordinator shutting down).
  void SetShuttingDown(bool shutting_down);
  // A WatchJob stream ends after `events` events with UNAVAILABLE and the dino-watch-resume
  // trailer, as the coordinator's --max-watch-lag-events does; -1 (the default) = never, 0 = at
  // once, with no event (a broken server).
  void SetWatchPage(int events);

  // --- Observations ---
  int submit_calls() const;
  int job_count() const;
  int watch_calls() const;
  std::vector<int64_t> download_offsets() const;  // The offset of every DownloadCheckpoint call.

  grpc::Status SubmitJob(grpc::ServerContext*, const dino::v1::SubmitJobRequest*,
                         dino::v1::SubmitJobResponse*) override;
  grpc::Status GetJob(grpc::ServerContext*, const dino::v1::GetJobRequest*,
                      dino::v1::Job*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const dino::v1::ListJobsRequest*,
                        dino::v1::ListJobsResponse*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const dino::v1::CancelJobRequest*,
                         dino::v1::Job*) override;
  grpc::Status WatchJob(grpc::ServerContext*, const dino::v1::WatchJobRequest*,
                        grpc::ServerWriter<dino::v1::JobEvent>*) override;
  grpc::Status ListCheckpoints(grpc::ServerContext*, const dino::v1::ListCheckpointsRequest*,
                               dino::v1::ListCheckpointsResponse*) override;
  grpc::Status DownloadCheckpoint(
      grpc::ServerContext*, const dino::v1::DownloadCheckpointRequest*,
      grpc::ServerWriter<dino::v1::DownloadCheckpointResponse>*) override;
  grpc::Status GetJobMetrics(grpc::ServerContext*, const dino::v1::GetJobMetricsRequest*,
                             dino::v1::GetJobMetricsResponse*) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const dino::v1::ListWorkersRequest*,
                           dino::v1::ListWorkersResponse*) override;

 private:
  bool TakeInjectedFailure() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AppendEventLocked(const std::string& job_id, dino::v1::JobEvent event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<dino::v1::Job> jobs_ ABSL_GUARDED_BY(mu_);  // Submission order.
  std::map<std::string, std::vector<dino::v1::JobEvent>> events_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<dino::v1::CheckpointInfo>> checkpoints_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);  // By checkpoint id.
  std::map<std::string, dino::v1::GetJobMetricsResponse> metrics_ ABSL_GUARDED_BY(mu_);
  std::vector<dino::v1::WorkerInfo> workers_ ABSL_GUARDED_BY(mu_);
  int lose_submit_responses_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_next_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool corrupt_downloads_ ABSL_GUARDED_BY(mu_) = false;
  int break_download_after_ ABSL_GUARDED_BY(mu_) = -1;
  int chunk_size_ ABSL_GUARDED_BY(mu_) = 1024;
  int page_size_ ABSL_GUARDED_BY(mu_) = 50;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  int watch_page_ ABSL_GUARDED_BY(mu_) = -1;
  int submit_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int watch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> download_offsets_ ABSL_GUARDED_BY(mu_);
};

// The service served on 127.0.0.1; survives Stop/Start (same port) with its state.
class FakeCoordinator {
 public:
  FakeCoordinator();
  ~FakeCoordinator();
  void Start();  // First call picks a free port; later calls reuse it.
  // Ends open watches with UNAVAILABLE and shuts the server down.
  void Stop();
  std::string address() const;
  FakeJobService& service() { return service_; }

 private:
  FakeJobService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace dino::client::testing
