#include "worker/agent/coordinator_link.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/file_system.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace dino::agent {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr int kMaxMessage = 16 << 20;

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

CoordinatorLink::CoordinatorLink(const std::string& address, LinkSecurity security)
    : address_(address), token_(std::move(security.token)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  // Reconnect quickly after a coordinator restart.
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
  return response;
}

absl::StatusOr<dino::v1::ReportProgressResponse> CoordinatorLink::ReportProgress(
    const dino::v1::ReportProgressRequest& request) {
  grpc::ClientContext context;
  Authorize(&context);
  SetDeadline(&context, absl::Seconds(10));
  dino::v1::ReportProgressResponse response;
  DINO_RETURN_IF_ERROR(FromGrpcStatus(stub_->ReportProgress(&context, request, &response)));
  return response;
}

absl::Status CoordinatorLink::ReportResult(const dino::v1::ReportResultRequest& request) {
  grpc::ClientContext context;
  Authorize(&context);
  SetDeadline(&context, absl::Seconds(10));
  dino::v1::ReportResultResponse response;
  return FromGrpcStatus(stub_->ReportResult(&context, request, &response));
}

absl::StatusOr<dino::v1::CheckpointInfo> CoordinatorLink::UploadCheckpoint(
    dino::v1::CheckpointUploadHeader header, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("checkpoint ", path, " is gone"));
  in.seekg(0, std::ios::end);
  header.set_size_bytes(static_cast<int64_t>(in.tellg()));
  in.seekg(0);

  grpc::ClientContext context;
  Authorize(&context);
  SetDeadline(&context, absl::Minutes(30));
  dino::v1::UploadCheckpointResponse response;
  auto writer = stub_->UploadCheckpoint(&context, &response);
  dino::v1::UploadCheckpointRequest request;
  *request.mutable_header() = header;
  bool ok = writer->Write(request);
  Sha256 hash;
  std::vector<char> buffer(kChunk);
  while (ok && in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    hash.Update(absl::string_view(buffer.data(), static_cast<size_t>(n)));
    request.Clear();
    request.set_data(buffer.data(), static_cast<size_t>(n));
    ok = writer->Write(request);
  }
  if (ok) {
    request.Clear();
    request.set_sha256(hash.HexDigest());
    ok = writer->Write(request);
  }
  writer->WritesDone();
  DINO_RETURN_IF_ERROR(FromGrpcStatus(writer->Finish()));
  return response.checkpoint();
}

absl::Status CoordinatorLink::DownloadCheckpoint(const std::string& job_id,
                                                 const std::string& checkpoint_id,
                                                 const std::string& expected_sha256,
                                                 const std::string& path) {
  grpc::ClientContext context;
  Authorize(&context);
  SetDeadline(&context, absl::Minutes(30));
  dino::v1::DownloadCheckpointRequest request;
  request.set_job_id(job_id);
  request.set_checkpoint_id(checkpoint_id);
  auto reader = stub_->DownloadCheckpoint(&context, request);
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
  DefaultFileSystem()->CreateDirs(DirName(path)).IgnoreError();
  return WriteFileAtomically(DefaultFileSystem(), path, bytes);
}

bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsResourceExhausted(status) || absl::IsUnknown(status) || absl::IsInternal(status) ||
         absl::IsAborted(status);
}

absl::Status RetryTransient(const std::string& what, const std::function<absl::Status()>& call,
                            const std::function<bool()>& stop, Clock* clock) {
  Backoff backoff({absl::Milliseconds(200), absl::Seconds(5)});
  for (int attempt = 1;; ++attempt) {
    if (stop && stop()) return absl::CancelledError(absl::StrCat(what, ": stopped"));
    absl::Status status = call();
    if (status.ok() || !IsTransient(status)) return status;
    const absl::Duration delay = backoff.Next();
    DINO_LOG(WARNING) << what << " failed (try " << attempt << "): " << status << "; retrying in "
                      << delay;
    clock->SleepFor(delay);
  }
}

}  // namespace dino::agent
