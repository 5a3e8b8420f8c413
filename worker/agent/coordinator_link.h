// CoordinatorLink: the worker's client side of dino.v1.WorkerService: one channel to the
// coordinator, unary calls with deadlines, the checkpoint upload and download streams, and a retry
// helper for calls that must eventually get through a coordinator restart.
//
// Ownership: owns the channel and stub. Thread-safety: every method may be called from any thread
// (gRPC stubs are thread-safe).
// Failure: gRPC errors are mapped to absl::Status (common/grpc_status.h). Upload/download return
// DATA_LOSS when the bytes do not match the sha256, NOT_FOUND when the local file is gone.
#pragma once

#include <grpcpp/security/credentials.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dino/v1/worker.grpc.pb.h"

namespace dino::agent {

// How the worker proves itself to the coordinator: transport credentials (TLS from --tls-ca; null
// means plaintext) and the bearer token from --token-file ("" sends none).
struct LinkSecurity {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string token;
};

class CoordinatorLink {
 public:
  explicit CoordinatorLink(const std::string& address, LinkSecurity security = {});

  // Adds "authorization: Bearer <token>" to a call made on stub() directly (every call of this
  // class already has it).
  void Authorize(grpc::ClientContext* context) const;

  const std::string& address() const { return address_; }
  dino::v1::WorkerService::Stub* stub() { return stub_.get(); }

  absl::StatusOr<dino::v1::RegisterResponse> Register(const dino::v1::RegisterRequest& request);
  absl::StatusOr<dino::v1::ReportProgressResponse> ReportProgress(
      const dino::v1::ReportProgressRequest& request);
  absl::Status ReportResult(const dino::v1::ReportResultRequest& request);
  // Streams the file at `path` in 1 MiB chunks after `header` (size_bytes is filled in), then its
  // sha256.
  absl::StatusOr<dino::v1::CheckpointInfo> UploadCheckpoint(dino::v1::CheckpointUploadHeader header,
                                                            const std::string& path);
  // Downloads checkpoint `checkpoint_id` of `job_id` to `path` (written atomically) and checks
  // it against `expected_sha256` (and the sha256 the coordinator announces).
  absl::Status DownloadCheckpoint(const std::string& job_id, const std::string& checkpoint_id,
                                  const std::string& expected_sha256, const std::string& path);

 private:
  const std::string address_;
  const std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dino::v1::WorkerService::Stub> stub_;
};

// True for failures worth retrying once the coordinator is back.
bool IsTransient(const absl::Status& status);

// Calls `call` until it succeeds, fails with a non-transient status, or `stop` returns true
// (then CANCELLED). Waits with capped exponential backoff between tries, logging each retry.
absl::Status RetryTransient(const std::string& what, const std::function<absl::Status()>& call,
                            const std::function<bool()>& stop, Clock* clock);

}  // namespace dino::agent
