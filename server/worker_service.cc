#include "server/worker_service.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "server/bounded_write_reactor.h"
#include "server/job_service.h"
#include "server/unary_reply.h"

namespace dino::server {
namespace {

using dino::v1::CoordinatorMessage;
using dino::v1::WorkerMessage;

class ConnectReactor;

// The Coordinator's handle on a Connect stream. It outlives the reactor (the Coordinator may hold
// it a little longer); once the reactor is done, Send and Close do nothing.
class StreamChannel final : public WorkerChannel {
 public:
  explicit StreamChannel(ConnectReactor* reactor) : reactor_(reactor) {}
  void Send(const CoordinatorMessage& message) override;
  void Close(const absl::Status& status) override;
  void Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  ConnectReactor* reactor_ ABSL_GUARDED_BY(mu_);
};

// One worker's Connect stream: a Hello, then heartbeats up; assignments, cancels and aborts down
// (queued without a bound: the Coordinator sends a worker only a few messages per attempt).
// Lock order: Coordinator -> StreamChannel -> the write queue; the reactor never calls the
// Coordinator while holding a lock of its own.
class ConnectReactor final
    : public BoundedWriteReactor<grpc::ServerBidiReactor<WorkerMessage, CoordinatorMessage>,
                                 CoordinatorMessage> {
 public:
  ConnectReactor(Coordinator* coordinator, std::string credential)
      : BoundedWriteReactor(QueueOptions()),
        coordinator_(coordinator),
        credential_(std::move(credential)),
        channel_(std::make_shared<StreamChannel>(this)) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // The worker closed its side, or the stream broke.
      EndAfterQueued(absl::OkStatus());
      return;
    }
    absl::Status status;
    if (incoming_.has_hello()) {
      if (!worker_id_.empty()) {
        status = absl::InvalidArgumentError("hello was already sent on this stream");
      } else {
        worker_id_ = incoming_.hello().worker_id();
        status = coordinator_->AttachWorker(worker_id_, channel_, credential_);
        if (!status.ok()) worker_id_.clear();
      }
    } else if (incoming_.has_heartbeat()) {
      status = worker_id_.empty() ? absl::FailedPreconditionError("send hello before heartbeats")
                                  : coordinator_->Heartbeat(worker_id_, incoming_.heartbeat());
    } else if (incoming_.has_leaving()) {
      status = worker_id_.empty()
                   ? absl::FailedPreconditionError("send hello before leaving")
                   : coordinator_->WorkerLeaving(worker_id_, incoming_.leaving().reason());
    }
    if (!status.ok()) {
      EndAfterQueued(status);
      return;
    }
    StartRead(&incoming_);
  }

  void OnCancel() override {
    EndAfterQueued(absl::CancelledError("the worker stream was cancelled"));
  }

 private:
  static Options QueueOptions() {
    Options options;
    options.write_failed_message = "the worker stream broke";
    return options;
  }

  void OnStreamDone() override {
    channel_->Detach();
    if (!worker_id_.empty()) coordinator_->DetachWorker(worker_id_, channel_.get());
  }

  Coordinator* const coordinator_;
  const std::string credential_;  // The caller's name: heartbeats follow its checked Hello.
  const std::shared_ptr<StreamChannel> channel_;
  WorkerMessage incoming_;  // Reads are sequential: only the reading reaction touches it.
  std::string worker_id_;   // Same.
};

void StreamChannel::Send(const CoordinatorMessage& message) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) reactor_->Enqueue(message);
}

void StreamChannel::Close(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) reactor_->EndAfterQueued(status);
}

// Header, data chunks, sha256 trailer. Anything else (a broken stream, a missing trailer, more
// bytes than announced, a wrong digest) abandons the upload.
class UploadReactor final : public grpc::ServerReadReactor<dino::v1::UploadCheckpointRequest> {
 public:
  UploadReactor(Coordinator* coordinator, std::string credential, const ServerLimits* limits,
                dino::v1::UploadCheckpointResponse* response)
      : coordinator_(coordinator),
        credential_(std::move(credential)),
        limits_(limits),
        response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Fail(absl::DataLossError(upload_ == nullptr
                                   ? "checkpoint upload ended before its header"
                                   : "checkpoint upload ended before its sha256 (truncated)"));
      return;
    }
    switch (request_.part_case()) {
      case dino::v1::UploadCheckpointRequest::kHeader: {
        if (upload_ != nullptr) {
          Fail(absl::InvalidArgumentError("a second header in one checkpoint upload"));
          return;
        }
        if (absl::Status size = CheckCheckpointSize(request_.header().size_bytes(), *limits_);
            !size.ok()) {
          Fail(size);
          return;
        }
        auto upload = coordinator_->BeginCheckpointUpload(request_.header(), credential_);
        if (!upload.ok()) {
          Fail(upload.status());
          return;
        }
        upload_ = std::move(*upload);
        break;
      }
      case dino::v1::UploadCheckpointRequest::kData: {
        if (upload_ == nullptr) {
          Fail(absl::FailedPreconditionError("checkpoint data before the header"));
          return;
        }
        absl::Status status = CheckUploadChunk(request_.data().size(), *limits_);
        if (status.ok()) status = upload_->Append(request_.data());
        if (!status.ok()) {
          Fail(status);
          return;
        }
        break;
      }
      case dino::v1::UploadCheckpointRequest::kSha256: {
        if (upload_ == nullptr) {
          Fail(absl::FailedPreconditionError("checkpoint sha256 before the header"));
          return;
        }
        auto info = coordinator_->FinishCheckpointUpload(std::move(upload_), request_.sha256());
        if (info.ok()) *response_->mutable_checkpoint() = std::move(*info);
        Finish(ToGrpcStatus(info.status()));
        return;
      }
      default:
        Fail(absl::InvalidArgumentError("an empty checkpoint upload message"));
        return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    if (upload_ != nullptr) coordinator_->AbandonCheckpointUpload(std::move(upload_));
    delete this;
  }

 private:
  void Fail(const absl::Status& status) {
    if (upload_ != nullptr) coordinator_->AbandonCheckpointUpload(std::move(upload_));
    Finish(ToGrpcStatus(status));
  }

  Coordinator* const coordinator_;
  const std::string credential_;
  const ServerLimits* const limits_;
  dino::v1::UploadCheckpointResponse* const response_;
  dino::v1::UploadCheckpointRequest request_;
  std::unique_ptr<CheckpointUpload> upload_;
};

}  // namespace

grpc::ServerUnaryReactor* WorkerServiceImpl::Register(grpc::CallbackServerContext* context,
                                                      const dino::v1::RegisterRequest* request,
                                                      dino::v1::RegisterResponse* response) {
  auto result = coordinator_->RegisterWorker(*request, CallerName(calls_, context));
  if (result.ok()) {
    *response = std::move(*result);
    // The worker sizes its upload chunks and refuses oversized checkpoints from these.
    response->set_max_upload_chunk_bytes(limits_.max_upload_chunk_bytes);
    response->set_max_checkpoint_bytes(limits_.max_checkpoint_bytes);
  }
  return Done(context, result.status());
}

grpc::ServerBidiReactor<WorkerMessage, CoordinatorMessage>* WorkerServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  return new ConnectReactor(coordinator_, CallerName(calls_, context));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportProgress(
    grpc::CallbackServerContext* context, const dino::v1::ReportProgressRequest* request,
    dino::v1::ReportProgressResponse* response) {
  auto result = coordinator_->ReportProgress(*request, CallerName(calls_, context));
  if (result.ok()) *response = std::move(*result);
  return Done(context, result.status());
}

grpc::ServerReadReactor<dino::v1::UploadCheckpointRequest>* WorkerServiceImpl::UploadCheckpoint(
    grpc::CallbackServerContext* context, dino::v1::UploadCheckpointResponse* response) {
  return new UploadReactor(coordinator_, CallerName(calls_, context), &limits_, response);
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportResult(
    grpc::CallbackServerContext* context, const dino::v1::ReportResultRequest* request,
    dino::v1::ReportResultResponse* /*response*/) {
  return Done(context, coordinator_->ReportResult(*request, CallerName(calls_, context)));
}

grpc::ServerWriteReactor<dino::v1::DownloadCheckpointResponse>*
WorkerServiceImpl::DownloadCheckpoint(grpc::CallbackServerContext* /*context*/,
                                      const dino::v1::DownloadCheckpointRequest* request) {
  return NewDownloadReactor(coordinator_, *request);
}

}  // namespace dino::server
