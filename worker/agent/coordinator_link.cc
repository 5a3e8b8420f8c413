#include "worker/agent/coordinator_link.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace dino::agent {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr int kMaxMessage = 16 << 20;

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// A call that `cancel` ends: its context is cancelled for as long as the call is in flight.
class CancellableCall {
 public:
  explicit CancellableCall(CancelToken* cancel)
      : registration_(cancel, [this] { context_.TryCancel(); }) {}
  grpc::ClientContext* context() { return &context_; }

 private:
  grpc::ClientContext context_;  // Declared first: outlives the registration.
  CancelToken::Registration registration_;
};

class GrpcConnectStream final : public ConnectStream {
 public:
  GrpcConnectStream(dino::v1::WorkerService::Stub* stub, const std::string& token) {
    if (!token.empty()) context_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub->Connect(&context_);
  }
  bool Read(dino::v1::CoordinatorMessage* message) override { return stream_->Read(message); }
  bool Write(const dino::v1::WorkerMessage& message) override { return stream_->Write(message); }
  void WritesDone() override { stream_->WritesDone(); }
  void Cancel() override { context_.TryCancel(); }
  absl::Status Finish() override { return FromGrpcStatus(stream_->Finish()); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<dino::v1::WorkerMessage, dino::v1::CoordinatorMessage>>
      stream_;
};

}  // namespace

CoordinatorLink::CoordinatorLink(std::shared_ptr<grpc::Channel> channel, std::string token,
                                 FileSystem* fs)
    : address_("in-process"),
      token_(std::move(token)),
      fs_(fs),
      channel_(std::move(channel)),
      stub_(dino::v1::WorkerService::NewStub(channel_)) {}

CoordinatorLink::CoordinatorLink(const std::string& address, LinkSecurity security, FileSystem* fs)
    : address_(address), token_(std::move(security.token)), fs_(fs) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  // Reconnect quickly after a coordinator restart (gRPC's own backoff starts at 1 s and grows to
  // two minutes): a worker must be back within the coordinator's --worker-timeout.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  channel_ = grpc::CreateCustomChannel(
      address,
      security.credentials != nullptr ? security.credentials : grpc::InsecureChannelCredentials(),
      args);
  stub_ = dino::v1::WorkerService::NewStub(channel_);
}

void CoordinatorLink::Authorize(grpc::ClientContext* context) const {
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
}

absl::StatusOr<dino::v1::RegisterResponse> CoordinatorLink::Register(
    const dino::v1::RegisterRequest& request) {
  grpc::ClientContext context;
  Authorize(&context);
  SetDeadline(&context, absl::Seconds(10));
  dino::v1::RegisterResponse response;
  DINO_RETURN_IF_ERROR(FromGrpcStatus(stub_->Register(&context, request, &response)));
  max_upload_chunk_bytes_.store(response.max_upload_chunk_bytes());
  max_checkpoint_bytes_.store(response.max_checkpoint_bytes());
  return response;
}

std::unique_ptr<ConnectStream> CoordinatorLink::Connect() {
  return std::make_unique<GrpcConnectStream>(stub_.get(), token_);
}

absl::StatusOr<dino::v1::ReportProgressResponse> CoordinatorLink::ReportProgress(
    const dino::v1::ReportProgressRequest& request, CancelToken* cancel) {
  CancellableCall call(cancel);
  Authorize(call.context());
  SetDeadline(call.context(), absl::Seconds(10));
  dino::v1::ReportProgressResponse response;
  DINO_RETURN_IF_ERROR(FromGrpcStatus(stub_->ReportProgress(call.context(), request, &response)));
  return response;
}

absl::Status CoordinatorLink::ReportResult(const dino::v1::ReportResultRequest& request,
                                           CancelToken* cancel) {
  CancellableCall call(cancel);
  Authorize(call.context());
  SetDeadline(call.context(), absl::Seconds(10));
  dino::v1::ReportResultResponse response;
  return FromGrpcStatus(stub_->ReportResult(call.context(), request, &response));
}

absl::StatusOr<dino::v1::CheckpointInfo> CoordinatorLink::UploadCheckpoint(
    dino::v1::CheckpointUploadHeader header, const std::string& path, CancelToken* cancel) {
  // Opened once: the bytes stay readable if retention deletes the path meanwhile.
  absl::StatusOr<std::unique_ptr<ReadableFile>> file = fs_->NewReadableFile(path);
  if (!file.ok()) {
    if (!fs_->Exists(path))
      return absl::NotFoundError(absl::StrCat("checkpoint ", path, " is gone"));
    return file.status();
  }
  const uint64_t size = (*file)->size();
  header.set_size_bytes(static_cast<int64_t>(size));
  // Over the coordinator's limit it would be refused, now and on every retry.
  if (const int64_t max = max_checkpoint_bytes_.load(); max > 0 && header.size_bytes() > max) {
    return absl::OutOfRangeError(absl::StrCat("checkpoint ", path, " of ", size,
                                              " bytes is more than the coordinator's limit "
                                              "--max-checkpoint-bytes=",
                                              max, "; not sent"));
  }
  size_t chunk_bytes = kChunk;
  if (const int64_t announced = max_upload_chunk_bytes_.load(); announced > 0) {
    chunk_bytes = std::min<size_t>(chunk_bytes, static_cast<size_t>(announced));
  }

  CancellableCall call(cancel);
  Authorize(call.context());
  SetDeadline(call.context(), absl::Minutes(30));
  dino::v1::UploadCheckpointResponse response;
  auto writer = stub_->UploadCheckpoint(call.context(), &response);
  dino::v1::UploadCheckpointRequest request;
  *request.mutable_header() = header;
  bool ok = writer->Write(request);
  Sha256 hash;
  absl::Status read_status;
  for (uint64_t offset = 0; ok && offset < size;) {
    absl::StatusOr<std::string> chunk = (*file)->Read(offset, chunk_bytes);
    if (!chunk.ok() || chunk->empty()) {
      read_status =
          chunk.ok() ? absl::DataLossError(absl::StrCat(path, " ended early")) : chunk.status();
      call.context()->TryCancel();
      ok = false;
      break;
    }
    offset += chunk->size();
    hash.Update(*chunk);
    request.Clear();
    request.set_data(std::move(*chunk));
    ok = writer->Write(request);
  }
  if (ok) {
    request.Clear();
    request.set_sha256(hash.HexDigest());
    ok = writer->Write(request);
  }
  writer->WritesDone();
  absl::Status finished = FromGrpcStatus(writer->Finish());
  DINO_RETURN_IF_ERROR(read_status);
  DINO_RETURN_IF_ERROR(finished);
  return response.checkpoint();
}

absl::Status CoordinatorLink::DownloadCheckpoint(const std::string& job_id,
                                                 const std::string& checkpoint_id,
                                                 const std::string& expected_sha256,
                                                 const std::string& path, CancelToken* cancel) {
  CancellableCall call(cancel);
  Authorize(call.context());
  SetDeadline(call.context(), absl::Minutes(30));
  dino::v1::DownloadCheckpointRequest request;
  request.set_job_id(job_id);
  request.set_checkpoint_id(checkpoint_id);
  auto reader = stub_->DownloadCheckpoint(call.context(), request);
  dino::v1::DownloadCheckpointResponse chunk;
  std::string bytes;
  std::string announced;
  while (reader->Read(&chunk)) {
    if (chunk.has_info()) announced = chunk.info().sha256();
    if (chunk.offset() != static_cast<int64_t>(bytes.size())) {
      return absl::DataLossError(absl::StrCat("checkpoint ", checkpoint_id, ": chunk at offset ",
                                              chunk.offset(), ", expected ", bytes.size()));
    }
    bytes += chunk.data();
  }
  DINO_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
  const std::string actual = Sha256::Of(bytes);
  for (const std::string& want : {expected_sha256, announced}) {
    if (!want.empty() && want != actual) {
      return absl::DataLossError(absl::StrCat("checkpoint ", checkpoint_id, " of ", job_id,
                                              " has sha256 ", actual, ", expected ", want));
    }
  }
  fs_->CreateDirs(DirName(path)).IgnoreError();
  return WriteFileAtomically(fs_, path, bytes);
}

}  // namespace dino::agent
