// WorkerServiceImpl: the gRPC WorkerService (worker.proto) as thin callback handlers over the
// Coordinator. Connect is a bidirectional reactor whose push side is handed to the Coordinator as
// a WorkerChannel; UploadCheckpoint is a client-streaming reactor feeding a CheckpointUpload.
//
// Every call passes its caller's name (AuthCalls, auth_interceptor.h; "anonymous" when `calls` is
// null) to the Coordinator, which binds worker ids to it.
//
// Ownership: borrows the Coordinator and AuthCalls, which must outlive the gRPC server.
// Thread-safety: gRPC calls the handlers on its own threads; all state is in the Coordinator.
// Failure: the Coordinator's absl::Status, mapped by ToGrpcStatus; protocol misuse on a stream
// (data before the header, a heartbeat before the hello) is FAILED_PRECONDITION / INVALID_ARGUMENT.
#pragma once

#include "dino/v1/worker.grpc.pb.h"
#include "server/auth_interceptor.h"
#include "server/coordinator.h"
#include "server/limits.h"

namespace dino::server {

class WorkerServiceImpl final : public dino::v1::WorkerService::CallbackService {
 public:
  // `limits` (server/limits.h): upload chunk and checkpoint sizes.
  WorkerServiceImpl(Coordinator* coordinator, const ServerLimits& limits,
                    const AuthCalls* calls = nullptr)
      : coordinator_(coordinator), calls_(calls), limits_(limits) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const dino::v1::RegisterRequest* request,
                                     dino::v1::RegisterResponse* response) override;
  grpc::ServerBidiReactor<dino::v1::WorkerMessage, dino::v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ReportProgress(grpc::CallbackServerContext* context,
                                           const dino::v1::ReportProgressRequest* request,
                                           dino::v1::ReportProgressResponse* response) override;
  grpc::ServerReadReactor<dino::v1::UploadCheckpointRequest>* UploadCheckpoint(
      grpc::CallbackServerContext* context, dino::v1::UploadCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* ReportResult(grpc::CallbackServerContext* context,
                                         const dino::v1::ReportResultRequest* request,
                                         dino::v1::ReportResultResponse* response) override;
  grpc::ServerWriteReactor<dino::v1::DownloadCheckpointResponse>* DownloadCheckpoint(
      grpc::CallbackServerContext* context,
      const dino::v1::DownloadCheckpointRequest* request) override;

 private:
  Coordinator* const coordinator_;
  const AuthCalls* const calls_;
  const ServerLimits limits_;
};

}  // namespace dino::server
