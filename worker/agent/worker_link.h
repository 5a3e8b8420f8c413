// WorkerLink: everything the worker agent says to the coordinator, as an interface, so that the
// Agent, the AttemptRunner and the Reporter are tested against an in-memory fake; CoordinatorLink
// (coordinator_link.h) is the gRPC implementation.
//
// Calls that an attempt makes (progress, result, checkpoint upload and download) take the
// attempt's CancelToken: cancelling it ends the call at once (CANCELLED), so an aborted attempt
// never keeps a thread inside a long upload.
//
// Ownership: the Agent owns the link; runners and reporters borrow it. Thread-safety: every method
// may be called from any thread. A ConnectStream allows one reader and one writer at a time, and
// Cancel() from any thread.
// Failure: absl::Status codes as the coordinator sent them (UNAVAILABLE when it is unreachable).
// UploadCheckpoint answers OUT_OF_RANGE, naming the coordinator's flag, for a checkpoint or chunk
// over one of its limits (IsLimitRefusal in retry.h): permanent. Upload and download answer
// NOT_FOUND when the local file is gone, DATA_LOSS when bytes do not verify.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dino/v1/worker.pb.h"
#include "worker/agent/cancel_token.h"

namespace dino::agent {

// The open Connect stream: the coordinator's messages in, heartbeats out.
class ConnectStream {
 public:
  virtual ~ConnectStream() = default;
  // Blocks for the next message; false once the stream ended (then call Finish).
  virtual bool Read(dino::v1::CoordinatorMessage* message) = 0;
  virtual bool Write(const dino::v1::WorkerMessage& message) = 0;
  virtual void WritesDone() = 0;
  // Ends the stream from any thread: a blocked Read returns false.
  virtual void Cancel() = 0;
  // The stream's final status, after Read returned false.
  virtual absl::Status Finish() = 0;
};

class WorkerLink {
 public:
  virtual ~WorkerLink() = default;

  // For logs.
  virtual std::string address() const = 0;

  // Registers this worker. The link keeps the limits the coordinator announces
  // (max_upload_chunk_bytes, max_checkpoint_bytes) and keeps its uploads under them.
  virtual absl::StatusOr<dino::v1::RegisterResponse> Register(
      const dino::v1::RegisterRequest& request) = 0;
  virtual std::unique_ptr<ConnectStream> Connect() = 0;

  virtual absl::StatusOr<dino::v1::ReportProgressResponse> ReportProgress(
      const dino::v1::ReportProgressRequest& request, CancelToken* cancel) = 0;
  virtual absl::Status ReportResult(const dino::v1::ReportResultRequest& request,
                                    CancelToken* cancel) = 0;
  // Streams the file at `path` after `header` (size_bytes is filled in), then its sha256.
  virtual absl::StatusOr<dino::v1::CheckpointInfo> UploadCheckpoint(
      dino::v1::CheckpointUploadHeader header, const std::string& path, CancelToken* cancel) = 0;
  // Downloads checkpoint `checkpoint_id` of `job_id` to `path` (written atomically) and checks
  // it against `expected_sha256` (and the sha256 the coordinator announces).
  virtual absl::Status DownloadCheckpoint(const std::string& job_id,
                                          const std::string& checkpoint_id,
                                          const std::string& expected_sha256,
                                          const std::string& path, CancelToken* cancel) = 0;
};

}  // namespace dino::agent
