// GrpcServiceTest: a CoordinatorServer on an in-process channel with JobService and WorkerService
// stubs, a simulated clock and its own data dir, plus helpers to submit, register and upload.
// Shared by grpc_service_test.cc (JobService, health, reflection), grpc_worker_stream_test.cc and
// grpc_server_metrics_test.cc.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "dino/v1/coordinator.grpc.pb.h"
#include "dino/v1/worker.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/coordinator_server.h"
#include "tests/server/test_util.h"

namespace dino::server {

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.listen = "";
    options.data_dir = testing::NewTempDir("grpc");
    data_dir_ = options.data_dir;
    options.tick_interval = absl::ZeroDuration();
    Configure(&options);
    auto server = CoordinatorServer::Start(options, &clock_, DefaultFileSystem(), &registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = server_->InProcessChannel();
    jobs_ = dino::v1::JobService::NewStub(channel_);
    workers_ = dino::v1::WorkerService::NewStub(channel_);
  }

  void TearDown() override {
    if (stream_ != nullptr) {
      connect_context_.TryCancel();
      stream_->Finish();
    }
  }

  // Called by SetUp before the server starts: a subclass sets limits or other options here.
  virtual void Configure(ServerOptions* /*options*/) {}

  // SubmitJob; the job id goes to *id when id is not null.
  grpc::Status TrySubmit(const dino::v1::JobSpec& spec, std::string* id) {
    grpc::ClientContext context;
    dino::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    dino::v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    if (id != nullptr) *id = response.job().id();
    return status;
  }

  // SubmitJob that must succeed; returns the job id.
  std::string Submit(const dino::v1::JobSpec& spec) {
    std::string id;
    grpc::Status status = TrySubmit(spec, &id);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return id;
  }

  std::string Register() {
    grpc::ClientContext context;
    dino::v1::RegisterRequest request;
    request.set_name("w");
    request.set_device("cpu");
    request.set_rendezvous_address("127.0.0.1:29500");
    dino::v1::RegisterResponse response;
    EXPECT_TRUE(workers_->Register(&context, request, &response).ok());
    EXPECT_EQ(response.worker_timeout().seconds(), 15);
    return response.worker_id();
  }

  // Registers a worker and opens its Connect stream (stream_, closed by TearDown); the queued job
  // is assigned to it. Returns the worker id.
  std::string StartAttempt() {
    const std::string worker = Register();
    stream_ = workers_->Connect(&connect_context_);
    dino::v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(worker);
    EXPECT_TRUE(stream_->Write(hello));
    dino::v1::CoordinatorMessage assignment;
    EXPECT_TRUE(stream_->Read(&assignment));
    EXPECT_TRUE(assignment.has_assignment());
    return worker;
  }

  grpc::Status Upload(const std::string& worker, const std::string& job, int64_t step,
                      const std::string& data, const std::string& sha, bool send_sha,
                      dino::v1::UploadCheckpointResponse* response, size_t chunk_bytes = 7) {
    grpc::ClientContext context;
    auto writer = workers_->UploadCheckpoint(&context, response);
    dino::v1::UploadCheckpointRequest part;
    auto* header = part.mutable_header();
    header->set_worker_id(worker);
    header->set_job_id(job);
    header->set_attempt(1);
    header->set_step(step);
    header->set_size_bytes(static_cast<int64_t>(data.size()));
    header->set_knn_top1(81.5);
    writer->Write(part);
    for (size_t offset = 0; offset < data.size(); offset += chunk_bytes) {
      part.set_data(data.substr(offset, chunk_bytes));
      writer->Write(part);
    }
    if (send_sha) {
      part.set_sha256(sha);
      writer->Write(part);
    }
    writer->WritesDone();
    return writer->Finish();
  }

  std::string data_dir_;
  SimulatedClock clock_;
  metrics::Registry registry_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dino::v1::JobService::Stub> jobs_;
  std::unique_ptr<dino::v1::WorkerService::Stub> workers_;
  grpc::ClientContext connect_context_;  // Of stream_.
  std::unique_ptr<grpc::ClientReaderWriter<dino::v1::WorkerMessage, dino::v1::CoordinatorMessage>>
      stream_;
};

}  // namespace dino::server
