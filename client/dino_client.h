// DinoClient: the C++ API of dinotrain's JobService (proto/dino/v1/coordinator.proto).
//
// Every method returns absl::Status / absl::StatusOr with the coordinator's code and message
// (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE, ...). Every unary call carries a
// deadline of `options.timeout`. UNAVAILABLE is retried with exponential backoff only where a
// retry cannot change the outcome: reads, CancelJob (cancelling twice is harmless) and SubmitJob,
// which is made idempotent by a request_id the client generates when the spec has none.
//
//   dino::client::DinoClientOptions options;
//   options.target = "localhost:50051";
//   auto client = dino::client::DinoClient::Create(options);
//   dino::v1::JobSpec spec = ...;
//   absl::StatusOr<dino::v1::SubmitJobResponse> submitted = client->SubmitJob(spec);
//   if (!submitted.ok()) return submitted.status();
//   absl::Status watched = client->WatchJob(submitted->job().id(), {},
//       [](const dino::v1::JobEvent& e) { std::cout << e.index() << "\n"; return true; });
//
// Ownership: the client owns its channel (or shares the one it was given). Thread-safety: all
// methods may be called from any number of threads at once; callbacks run on the calling thread.
// Failure: UNAVAILABLE after the retries when the coordinator cannot be reached; DATA_LOSS when a
// downloaded checkpoint does not match its size or sha256.
#pragma once

#include <grpcpp/channel.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/grpc_credentials.h"
#include "dino/v1/coordinator.grpc.pb.h"

namespace dino::client {

struct DinoClientOptions {
  std::string target = "localhost:50051";      // host:port of dino-coordinator.
  absl::Duration timeout = absl::Seconds(10);  // Deadline of each attempt of a unary call.
  int max_attempts = 4;  // Attempts of an idempotent call that keeps failing UNAVAILABLE.
  // Between retries and reconnects: capped exponential with jitter.
  BackoffOptions backoff{absl::Milliseconds(100), absl::Seconds(2)};
  // WatchJob and DownloadCheckpoint reconnect after UNAVAILABLE for at most this long without
  // receiving anything (e.g. while the coordinator restarts).
  absl::Duration reconnect_window = absl::Seconds(60);
  Clock* clock = nullptr;  // For backoff sleeps; nullptr = RealClock. Not owned.
  // Sent as "authorization: Bearer <token>" on every call when not empty (dinoctl: --token or
  // $DINO_TOKEN).
  std::string token;
  // TLS to the coordinator (--tls-ca); plaintext when tls.ca_file is empty.
  ChannelTlsOptions tls;
};

struct WatchOptions {
  int64_t after_index = 0;     // Resume after this event index (0 = from the first event).
  bool skip_progress = false;  // Progress events are not sent.
};

// Called for every event, in index order, each index once even across reconnects. Returning false
// stops the watch (WatchJob then returns OK).
using WatchCallback = std::function<bool(const dino::v1::JobEvent&)>;
// Called when a watch or download stream broke and is about to be reconnected.
using ReconnectCallback = std::function<void(const absl::Status& why)>;

// Receives the bytes of a checkpoint in order; an error aborts the download.
using ChunkSink = std::function<absl::Status(absl::string_view data)>;
// Bytes received so far and the total, after every chunk.
using ProgressCallback = std::function<void(int64_t received, int64_t total)>;

// A fresh random idempotency key ("req-" and 32 hex digits).
std::string GenerateRequestId();

class DinoClient {
 public:
  // Connects lazily to options.target (message limit 16 MiB), over TLS when options.tls names a
  // CA. Fails when a TLS file cannot be read or the TLS options are inconsistent.
  static absl::StatusOr<std::unique_ptr<DinoClient>> Open(const DinoClientOptions& options);
  // As Open, for callers that know the options are valid (plaintext): null when Open fails.
  static std::unique_ptr<DinoClient> Create(const DinoClientOptions& options);
  DinoClient(std::shared_ptr<grpc::Channel> channel, const DinoClientOptions& options);

  // Submits `spec`; sets spec.request_id to GenerateRequestId() when it is empty, so a retry
  // after a lost response returns the same job (created = false) instead of making a second.
  absl::StatusOr<dino::v1::SubmitJobResponse> SubmitJob(dino::v1::JobSpec spec);
  absl::StatusOr<dino::v1::Job> GetJob(const std::string& job_id);
  // Every page of the listing (request.page_token is the starting point).
  absl::StatusOr<std::vector<dino::v1::Job>> ListJobs(dino::v1::ListJobsRequest request);
  absl::StatusOr<dino::v1::Job> CancelJob(const std::string& job_id, const std::string& reason);
  absl::StatusOr<std::vector<dino::v1::CheckpointInfo>> ListCheckpoints(const std::string& job_id);
  absl::StatusOr<dino::v1::GetJobMetricsResponse> GetJobMetrics(
      const dino::v1::GetJobMetricsRequest& request);
  absl::StatusOr<std::vector<dino::v1::WorkerInfo>> ListWorkers(bool include_dead);

  // Follows the job's events until the stream ends OK (the job is terminal), `on_event` returns
  // false, or the coordinator stays unreachable for longer than options.reconnect_window. A broken
  // stream is reopened after the last index seen, with backoff; `on_reconnect` (optional) hears
  // about it. A stream the coordinator ends after a page of events (--max-watch-lag-events,
  // common/watch_resume.h) is reopened at once, and on_reconnect does not hear about it.
  absl::Status WatchJob(const std::string& job_id, const WatchOptions& watch,
                        const WatchCallback& on_event,
                        const ReconnectCallback& on_reconnect = nullptr);

  // Streams checkpoint `checkpoint_id` ("" or "latest", "best", or an id) of `job_id` into
  // `sink`, resuming at the byte reached after a broken stream, and verifies the total size and
  // sha256 against the checkpoint's info. Returns that info. The sink has seen unverified bytes
  // when this fails, so it must write somewhere temporary (see dinoctl's download).
  absl::StatusOr<dino::v1::CheckpointInfo> DownloadCheckpoint(
      const std::string& job_id, const std::string& checkpoint_id, const ChunkSink& sink,
      const ProgressCallback& on_progress = nullptr,
      const ReconnectCallback& on_reconnect = nullptr);

  const DinoClientOptions& options() const { return options_; }

 private:
  // Runs `call` (one attempt with a fresh context) and retries UNAVAILABLE with backoff.
  absl::Status CallWithRetry(const std::function<grpc::Status(grpc::ClientContext*)>& call);
  void SetDeadline(grpc::ClientContext* context) const;
  // Adds the bearer token (if any) to a call's metadata.
  void Authorize(grpc::ClientContext* context) const;

  DinoClientOptions options_;
  Clock* clock_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dino::v1::JobService::Stub> stub_;
};

}  // namespace dino::client
