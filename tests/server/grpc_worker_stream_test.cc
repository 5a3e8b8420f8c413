// WorkerService's Connect stream through an in-process channel: protocol errors (unknown worker,
// a heartbeat before hello, ...) and a graceful shutdown that ends watches and worker streams with
// UNAVAILABLE.
#include <grpcpp/grpcpp.h>

#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/grpc_service_fixture.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;

TEST_F(GrpcServiceTest, ConnectProtocolErrors) {
  {
    grpc::ClientContext context;
    auto stream = workers_->Connect(&context);
    dino::v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id("w-999");
    stream->Write(hello);
    dino::v1::CoordinatorMessage message;
    EXPECT_FALSE(stream->Read(&message));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    auto stream = workers_->Connect(&context);
    dino::v1::WorkerMessage heartbeat;
    heartbeat.mutable_heartbeat();
    stream->Write(heartbeat);
    dino::v1::CoordinatorMessage message;
    EXPECT_FALSE(stream->Read(&message));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext context;
    dino::v1::RegisterRequest request;
    request.set_device("tpu");
    request.set_rendezvous_address("x:1");
    dino::v1::RegisterResponse response;
    grpc::Status status = workers_->Register(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("device"));
  }
  {
    grpc::ClientContext context;
    dino::v1::ReportProgressRequest request;
    request.set_worker_id("w-1");
    request.set_job_id(Submit(testing::TinySpec()));
    request.set_attempt(1);
    dino::v1::ReportProgressResponse response;
    EXPECT_EQ(workers_->ReportProgress(&context, request, &response).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
}

TEST_F(GrpcServiceTest, ShutdownEndsWatchesAndWorkerStreamsWithUnavailable) {
  const std::string job = Submit(testing::TinySpec(2));  // Stays queued: one worker only.
  grpc::ClientContext watch_context;
  dino::v1::WatchJobRequest request;
  request.set_job_id(job);
  auto watch = jobs_->WatchJob(&watch_context, request);
  dino::v1::JobEvent event;
  ASSERT_TRUE(watch->Read(&event));  // QUEUED: the watch is registered.

  const std::string worker = Register();
  grpc::ClientContext connect_context;
  auto stream = workers_->Connect(&connect_context);
  dino::v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker);
  ASSERT_TRUE(stream->Write(hello));

  std::thread shutdown([this] { server_->Shutdown(absl::Seconds(10)); });
  EXPECT_FALSE(watch->Read(&event));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  dino::v1::CoordinatorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  shutdown.join();
}

}  // namespace
}  // namespace dino::server
