// Every JobService RPC and the WorkerService calls of a job's life through an in-process channel,
// errors included, plus the health and reflection services. The Connect stream's protocol errors
// and the graceful shutdown are in grpc_worker_stream_test.cc.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "common/sha256.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "dino/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator_server.h"
#include "tests/server/grpc_service_fixture.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;

TEST_F(GrpcServiceTest, HealthServiceReportsServing) {
  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  grpc::ByteBuffer request;  // HealthCheckRequest{service: ""} encodes to no bytes.
  grpc::Slice empty;
  request = grpc::ByteBuffer(&empty, 1);
  auto call = generic.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes += std::string(s.begin(), s.end());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING
  cq.Shutdown();
}

// What grpcurl does first: list the services through server reflection.
TEST_F(GrpcServiceTest, ReflectionListsTheServices) {
  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  auto call = generic.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](intptr_t expected) {
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), expected);
    EXPECT_TRUE(ok);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  step(1);
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  grpc::Slice request_slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&request_slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  step(2);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  step(3);
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices) bytes += std::string(slice.begin(), slice.end());
  EXPECT_THAT(bytes, HasSubstr("dino.v1.JobService"));
  EXPECT_THAT(bytes, HasSubstr("dino.v1.WorkerService"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(GrpcServiceTest, SubmitRejectsABadSpecNamingTheField) {
  grpc::ClientContext context;
  dino::v1::SubmitJobRequest request;
  *request.mutable_spec() = testing::TinySpec();
  request.mutable_spec()->mutable_optim()->set_batch_size_per_rank(0);
  dino::v1::SubmitJobResponse response;
  grpc::Status status = jobs_->SubmitJob(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "optim.batch_size_per_rank must be >= 1, got 0");
}

// proto3 cannot parse a string field holding invalid UTF-8; gRPC's callback server used to answer
// that with a bare UNIMPLEMENTED. SubmitJob parses its raw request and names the field.
TEST_F(GrpcServiceTest, SubmitWithInvalidUtf8IsInvalidArgumentNamingTheField) {
  auto submit = [&](const dino::v1::JobSpec& spec) {
    grpc::ClientContext context;
    dino::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    dino::v1::SubmitJobResponse response;
    return jobs_->SubmitJob(&context, request, &response);
  };
  dino::v1::JobSpec bad_name = testing::TinySpec();
  bad_name.set_name("bad\xff");
  grpc::Status status = submit(bad_name);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message(),
            "request.spec.name: not valid UTF-8 (byte 0xFF at offset 3); string fields must be "
            "UTF-8");

  dino::v1::JobSpec bad_label = testing::TinySpec();
  (*bad_label.mutable_labels())["team\xc3"] = "vision";
  status = submit(bad_label);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("request.spec.labels.key: not valid UTF-8 (byte 0xC3 at offset 4)"));

  dino::v1::JobSpec bad_path = testing::TinySpec();
  bad_path.mutable_data()->set_path("/data/\xed\xa0\x80");  // A UTF-16 surrogate.
  status = submit(bad_path);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("request.spec.data.path: not valid UTF-8"));

  // Bytes that are no protobuf message at all.
  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  grpc::Slice slice(std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  grpc::ByteBuffer request(&slice, 1);
  auto call = generic.PrepareUnaryCall(&context, "/dino.v1.JobService/SubmitJob", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message(), "request: not a valid SubmitJobRequest message");
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }

  // Nothing was created, and a valid spec with multi-byte UTF-8 is accepted.
  dino::v1::JobSpec good = testing::TinySpec();
  good.set_name("caf\xc3\xa9 \xf0\x9f\xa6\x95");
  EXPECT_FALSE(Submit(good).empty());
  grpc::ClientContext list_context;
  dino::v1::ListJobsResponse jobs;
  ASSERT_TRUE(jobs_->ListJobs(&list_context, dino::v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 1);
}

TEST_F(GrpcServiceTest, UnknownJobIsNotFoundOnEveryJobRpc) {
  {
    grpc::ClientContext context;
    dino::v1::GetJobRequest request;
    request.set_job_id("job-404");
    dino::v1::Job job;
    EXPECT_EQ(jobs_->GetJob(&context, request, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    dino::v1::CancelJobRequest request;
    request.set_job_id("job-404");
    dino::v1::Job job;
    EXPECT_EQ(jobs_->CancelJob(&context, request, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    dino::v1::WatchJobRequest request;
    request.set_job_id("job-404");
    auto reader = jobs_->WatchJob(&context, request);
    dino::v1::JobEvent event;
    EXPECT_FALSE(reader->Read(&event));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    dino::v1::ListCheckpointsRequest request;
    request.set_job_id("job-404");
    dino::v1::ListCheckpointsResponse response;
    EXPECT_EQ(jobs_->ListCheckpoints(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    dino::v1::DownloadCheckpointRequest request;
    request.set_job_id("job-404");
    auto reader = jobs_->DownloadCheckpoint(&context, request);
    dino::v1::DownloadCheckpointResponse chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    dino::v1::GetJobMetricsRequest request;
    request.set_job_id("job-404");
    dino::v1::GetJobMetricsResponse response;
    EXPECT_EQ(jobs_->GetJobMetrics(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(GrpcServiceTest, AJobFromSubmitToSucceededOverEveryRpc) {
  dino::v1::JobSpec spec = testing::TinySpec();
  spec.set_request_id("once");
  (*spec.mutable_labels())["team"] = "vision";
  const std::string job = Submit(spec);
  EXPECT_EQ(Submit(spec), job);  // Idempotent.

  grpc::ClientContext watch_context;
  dino::v1::WatchJobRequest watch_request;
  watch_request.set_job_id(job);
  auto watch = jobs_->WatchJob(&watch_context, watch_request);

  const std::string worker = Register();
  grpc::ClientContext connect_context;
  auto stream = workers_->Connect(&connect_context);
  dino::v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker);
  ASSERT_TRUE(stream->Write(hello));
  dino::v1::CoordinatorMessage assignment;
  ASSERT_TRUE(stream->Read(&assignment));
  ASSERT_TRUE(assignment.has_assignment());
  EXPECT_EQ(assignment.assignment().job_id(), job);
  EXPECT_EQ(assignment.assignment().rank(), 0);
  dino::v1::WorkerMessage heartbeat;
  heartbeat.mutable_heartbeat()->mutable_running()->set_job_id(job);
  heartbeat.mutable_heartbeat()->mutable_running()->set_attempt(1);
  ASSERT_TRUE(stream->Write(heartbeat));

  {
    grpc::ClientContext context;
    dino::v1::ReportProgressRequest request;
    request.set_worker_id(worker);
    request.set_job_id(job);
    request.set_attempt(1);
    for (int step = 0; step < 3; ++step) {
      auto* s = request.add_stats();
      s->set_step(step * 10);
      s->set_loss(5.0 - step);
      s->set_kl(0.3);
      s->set_batch_mean_entropy(2.0);
    }
    dino::v1::ReportProgressResponse response;
    ASSERT_TRUE(workers_->ReportProgress(&context, request, &response).ok());
    EXPECT_FALSE(response.cancel_requested());
  }

  const std::string blob = "a checkpoint that spans several chunks of seven bytes";
  dino::v1::UploadCheckpointResponse uploaded;
  grpc::Status upload =
      Upload(worker, job, 20, blob, Sha256::Of(blob), /*send_sha=*/true, &uploaded);
  ASSERT_TRUE(upload.ok()) << upload.error_message();
  EXPECT_EQ(uploaded.checkpoint().sha256(), Sha256::Of(blob));
  dino::v1::UploadCheckpointResponse rejected;
  EXPECT_EQ(Upload(worker, job, 30, blob, Sha256::Of("other"), true, &rejected).error_code(),
            grpc::StatusCode::DATA_LOSS);
  grpc::Status truncated = Upload(worker, job, 30, blob, "", /*send_sha=*/false, &rejected);
  EXPECT_EQ(truncated.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(truncated.error_message(), HasSubstr("truncated"));

  {
    grpc::ClientContext context;
    dino::v1::ListCheckpointsRequest request;
    request.set_job_id(job);
    dino::v1::ListCheckpointsResponse response;
    ASSERT_TRUE(jobs_->ListCheckpoints(&context, request, &response).ok());
    ASSERT_EQ(response.checkpoints_size(), 1);  // The rejected uploads left nothing.
    EXPECT_EQ(response.checkpoints(0).step(), 20);
  }
  {
    grpc::ClientContext context;
    dino::v1::DownloadCheckpointRequest request;
    request.set_job_id(job);
    request.set_checkpoint_id("best");
    auto reader = jobs_->DownloadCheckpoint(&context, request);
    dino::v1::DownloadCheckpointResponse chunk;
    std::string bytes;
    std::string sha;
    while (reader->Read(&chunk)) {
      if (chunk.has_info()) sha = chunk.info().sha256();
      EXPECT_EQ(chunk.offset(), static_cast<int64_t>(bytes.size()));
      bytes += chunk.data();
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(bytes, blob);
    EXPECT_EQ(Sha256::Of(bytes), sha);
  }
  {
    grpc::ClientContext context;
    dino::v1::DownloadCheckpointRequest request;
    request.set_job_id(job);
    request.set_offset(10);
    auto reader = workers_->DownloadCheckpoint(&context, request);
    dino::v1::DownloadCheckpointResponse chunk;
    std::string bytes;
    while (reader->Read(&chunk)) bytes += chunk.data();
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(bytes, blob.substr(10));
  }
  {
    grpc::ClientContext context;
    dino::v1::GetJobMetricsRequest request;
    request.set_job_id(job);
    request.add_series("loss");
    request.add_series("knn_top1");
    dino::v1::GetJobMetricsResponse response;
    ASSERT_TRUE(jobs_->GetJobMetrics(&context, request, &response).ok());
    ASSERT_EQ(response.series_size(), 2);
    EXPECT_EQ(response.series(0).points_size(), 3);
    ASSERT_EQ(response.series(1).points_size(), 1);
    EXPECT_DOUBLE_EQ(response.series(1).points(0).value(), 81.5);
  }
  {
    grpc::ClientContext context;
    dino::v1::ListWorkersResponse response;
    ASSERT_TRUE(jobs_->ListWorkers(&context, {}, &response).ok());
    ASSERT_EQ(response.workers_size(), 1);
    EXPECT_EQ(response.workers(0).state(), dino::v1::WORKER_STATE_BUSY);
  }
  {
    grpc::ClientContext context;
    dino::v1::ListJobsRequest request;
    (*request.mutable_labels())["team"] = "vision";
    dino::v1::ListJobsResponse response;
    ASSERT_TRUE(jobs_->ListJobs(&context, request, &response).ok());
    ASSERT_EQ(response.jobs_size(), 1);
    EXPECT_EQ(response.jobs(0).state(), dino::v1::JOB_STATE_RUNNING);
  }
  {
    grpc::ClientContext context;
    dino::v1::ReportResultRequest request;
    request.set_worker_id(worker);
    request.set_job_id(job);
    request.set_attempt(1);
    request.set_rank(0);
    request.set_outcome(dino::v1::ATTEMPT_OUTCOME_SUCCEEDED);
    request.set_final_step(30);
    dino::v1::ReportResultResponse response;
    ASSERT_TRUE(workers_->ReportResult(&context, request, &response).ok());
  }

  // The watch saw everything, in order, and ended with the job.
  std::vector<dino::v1::JobEvent> events;
  dino::v1::JobEvent event;
  while (watch->Read(&event)) events.push_back(event);
  ASSERT_TRUE(watch->Finish().ok());
  ASSERT_GE(events.size(), 7u);  // QUEUED, RUNNING, 3 progress, checkpoint, SUCCEEDED.
  EXPECT_EQ(events.front().state_change().to_state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events.back().state_change().to_state(), dino::v1::JOB_STATE_SUCCEEDED);
  bool saw_checkpoint = false;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].index(), static_cast<int64_t>(i + 1));
    saw_checkpoint |= events[i].has_checkpoint();
  }
  EXPECT_TRUE(saw_checkpoint);
  {
    grpc::ClientContext context;
    dino::v1::GetJobRequest request;
    request.set_job_id(job);
    dino::v1::Job got;
    ASSERT_TRUE(jobs_->GetJob(&context, request, &got).ok());
    EXPECT_EQ(got.state(), dino::v1::JOB_STATE_SUCCEEDED);
    EXPECT_DOUBLE_EQ(got.best_knn_top1(), 81.5);
    EXPECT_DOUBLE_EQ(got.latest_knn_top1(), 81.5);
  }
  // The Prometheus series of deploy/METRICS.md follow.
  const std::string exposition = registry_.Render();
  EXPECT_THAT(exposition, HasSubstr("dino_jobs{state=\"SUCCEEDED\"} 1\n"));
  EXPECT_THAT(exposition, HasSubstr("dino_job_submissions_total 1\n"));
  EXPECT_THAT(exposition, HasSubstr("dino_checkpoints_stored_total 1\n"));
  EXPECT_THAT(exposition, HasSubstr("dino_scheduling_latency_seconds_count 1\n"));
  EXPECT_THAT(exposition, HasSubstr("dino_workers{state=\"IDLE\"} 1\n"));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace dino::server
