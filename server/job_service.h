// JobServiceImpl: the gRPC JobService (coordinator.proto) as thin callback handlers over the
// Coordinator: convert, call, finish. WatchJob and DownloadCheckpoint are server-streaming
// reactors; see job_service.cc.
//
// SubmitJob records the caller from AuthCalls (auth_interceptor.h) as the job's submitter, or
// "anonymous" when `calls` is null (auth off).
//
// Ownership: borrows the Coordinator and AuthCalls, which must outlive the gRPC server.
// Thread-safety: gRPC calls the handlers on its own threads; all state is in the Coordinator.
// Failure: the Coordinator's absl::Status, mapped by ToGrpcStatus.
#pragma once

#include "dino/v1/coordinator.grpc.pb.h"
#include "server/auth_interceptor.h"
#include "server/coordinator.h"
#include "server/limits.h"

namespace dino::server {

// Largest data payload of one DownloadCheckpointResponse.
inline constexpr size_t kCheckpointChunkBytes = 1 << 20;

// SubmitJob is registered as a raw method (bytes in, bytes out) and parses the request itself:
// proto3 refuses to parse a string field that holds invalid UTF-8, and gRPC's callback server
// answers a request it cannot parse with a bare UNIMPLEMENTED. Parsing here turns that into
// INVALID_ARGUMENT naming the field ("request.spec.name: not valid UTF-8 ...",
// common/proto_utf8.h).
class JobServiceImpl final : public dino::v1::JobService::WithRawCallbackMethod_SubmitJob<
                                 dino::v1::JobService::CallbackService> {
 public:
  // `limits` (server/limits.h): SubmitJob's spec size and data roots, WatchJob streams per client
  // and the events queued for one.
  JobServiceImpl(Coordinator* coordinator, const ServerLimits& limits,
                 const AuthCalls* calls = nullptr)
      : coordinator_(coordinator),
        calls_(calls),
        limits_(limits),
        watch_streams_(limits.max_watch_streams_per_client) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const dino::v1::GetJobRequest* request,
                                   dino::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const dino::v1::ListJobsRequest* request,
                                     dino::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const dino::v1::CancelJobRequest* request,
                                      dino::v1::Job* response) override;
  grpc::ServerWriteReactor<dino::v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* context, const dino::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* context,
                                            const dino::v1::ListCheckpointsRequest* request,
                                            dino::v1::ListCheckpointsResponse* response) override;
  grpc::ServerWriteReactor<dino::v1::DownloadCheckpointResponse>* DownloadCheckpoint(
      grpc::CallbackServerContext* context,
      const dino::v1::DownloadCheckpointRequest* request) override;
  grpc::ServerUnaryReactor* GetJobMetrics(grpc::CallbackServerContext* context,
                                          const dino::v1::GetJobMetricsRequest* request,
                                          dino::v1::GetJobMetricsResponse* response) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* context,
                                        const dino::v1::ListWorkersRequest* request,
                                        dino::v1::ListWorkersResponse* response) override;

 private:
  Coordinator* const coordinator_;
  const AuthCalls* const calls_;
  const ServerLimits limits_;
  WatchStreamLimiter watch_streams_;
};

// The DownloadCheckpoint stream, shared by JobService and WorkerService.
grpc::ServerWriteReactor<dino::v1::DownloadCheckpointResponse>* NewDownloadReactor(
    Coordinator* coordinator, const dino::v1::DownloadCheckpointRequest& request);

}  // namespace dino::server
