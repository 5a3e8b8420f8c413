// CoordinatorLink: the gRPC implementation of WorkerLink (worker_link.h): one channel to the
// coordinator's dino.v1.WorkerService, unary calls with deadlines, the Connect stream, and the
// checkpoint upload and download streams.
//
// Ownership: owns the channel and stub; borrows the FileSystem (checkpoint files are read for
// upload and written atomically on download). Thread-safety: every method may be called from any
// thread (gRPC stubs are thread-safe).
// Failure: gRPC errors are mapped to absl::Status (common/grpc_status.h). Upload/download return
// DATA_LOSS when the bytes do not match the sha256, NOT_FOUND when the local file is gone, and
// CANCELLED when the call's CancelToken was cancelled.
#pragma once

#include <grpcpp/security/credentials.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/file_system.h"
#include "dino/v1/worker.grpc.pb.h"
#include "worker/agent/worker_link.h"

namespace dino::agent {

// How the worker proves itself to the coordinator: transport credentials (TLS from --tls-ca; null
// means plaintext) and the bearer token from --token-file ("" sends none).
struct LinkSecurity {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string token;
};

class CoordinatorLink final : public WorkerLink {
 public:
  CoordinatorLink(const std::string& address, LinkSecurity security, FileSystem* fs);
  // Over an existing channel (an in-process one in tests).
  CoordinatorLink(std::shared_ptr<grpc::Channel> channel, std::string token, FileSystem* fs);

  std::string address() const override { return address_; }

  absl::StatusOr<dino::v1::RegisterResponse> Register(
      const dino::v1::RegisterRequest& request) override;
  std::unique_ptr<ConnectStream> Connect() override;
  absl::StatusOr<dino::v1::ReportProgressResponse> ReportProgress(
      const dino::v1::ReportProgressRequest& request, CancelToken* cancel) override;
  absl::Status ReportResult(const dino::v1::ReportResultRequest& request,
                            CancelToken* cancel) override;
  // Sends the file in chunks of 1 MiB, or of the coordinator's max_upload_chunk_bytes when that is
  // smaller; refuses (OUT_OF_RANGE, naming --max-checkpoint-bytes) a file over the coordinator's
  // max_checkpoint_bytes without sending it.
  absl::StatusOr<dino::v1::CheckpointInfo> UploadCheckpoint(dino::v1::CheckpointUploadHeader header,
                                                            const std::string& path,
                                                            CancelToken* cancel) override;
  absl::Status DownloadCheckpoint(const std::string& job_id, const std::string& checkpoint_id,
                                  const std::string& expected_sha256, const std::string& path,
                                  CancelToken* cancel) override;

 private:
  // Adds "authorization: Bearer <token>" to a call.
  void Authorize(grpc::ClientContext* context) const;

  const std::string address_;
  const std::string token_;
  FileSystem* const fs_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dino::v1::WorkerService::Stub> stub_;
  // From the last RegisterResponse; 0 when the coordinator announced none.
  std::atomic<int64_t> max_upload_chunk_bytes_{0};
  std::atomic<int64_t> max_checkpoint_bytes_{0};
};

}  // namespace dino::agent
