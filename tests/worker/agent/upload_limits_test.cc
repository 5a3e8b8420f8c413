// The worker's checkpoint uploads against an in-process coordinator whose size limits are below
// the worker's defaults (--max-upload-chunk-bytes under 1 MiB, a small --max-checkpoint-bytes):
// the worker sends chunks of the size the coordinator announced at registration, and a checkpoint
// over the limit fails the attempt, naming the flag, instead of being retried forever.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/file_system.h"
#include "tests/server/grpc_service_fixture.h"
#include "worker/agent/coordinator_link.h"
#include "worker/agent/reporter.h"

namespace dino::agent {
namespace {

using ::testing::HasSubstr;

class UploadLimitsTest : public server::GrpcServiceTest {
 protected:
  void Configure(server::ServerOptions* options) override {
    options->limits.max_upload_chunk_bytes = 1024;
    options->limits.max_checkpoint_bytes = 64 << 10;
  }

  // Registers through the worker's link and takes the queued job's assignment on its stream.
  void Join() {
    link_ = std::make_unique<CoordinatorLink>(channel_, "", DefaultFileSystem());
    job_ = Submit(server::testing::TinySpec());
    dino::v1::RegisterRequest request;
    request.set_name("w");
    request.set_device("cpu");
    request.set_rendezvous_address("127.0.0.1:29500");
    absl::StatusOr<dino::v1::RegisterResponse> registered = link_->Register(request);
    ASSERT_TRUE(registered.ok()) << registered.status();
    worker_ = registered->worker_id();
    connect_ = link_->Connect();
    dino::v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(worker_);
    ASSERT_TRUE(connect_->Write(hello));
    dino::v1::CoordinatorMessage assignment;
    ASSERT_TRUE(connect_->Read(&assignment));
    ASSERT_TRUE(assignment.has_assignment());
  }

  void TearDown() override {
    if (connect_ != nullptr) {
      connect_->Cancel();
      connect_->Finish().IgnoreError();
    }
    GrpcServiceTest::TearDown();
  }

  std::string WriteCheckpoint(size_t bytes) {
    const std::string path = data_dir_ + "/upload-" + std::to_string(bytes);
    EXPECT_TRUE(WriteFileAtomically(DefaultFileSystem(), path, std::string(bytes, 'w')).ok());
    return path;
  }

  dino::v1::CheckpointUploadHeader Header(int64_t step) const {
    dino::v1::CheckpointUploadHeader h;
    h.set_worker_id(worker_);
    h.set_job_id(job_);
    h.set_attempt(1);
    h.set_step(step);
    return h;
  }

  std::unique_ptr<CoordinatorLink> link_;  // Over the fixture's in-process channel.
  std::unique_ptr<ConnectStream> connect_;
  std::string job_;
  std::string worker_;
};

TEST_F(UploadLimitsTest, UploadsInTheChunkSizeTheCoordinatorAnnounces) {
  ASSERT_NO_FATAL_FAILURE(Join());
  absl::StatusOr<dino::v1::CheckpointInfo> info =
      link_->UploadCheckpoint(Header(10), WriteCheckpoint(5000), nullptr);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size_bytes(), 5000);
}

TEST_F(UploadLimitsTest, ACheckpointOverTheLimitFailsTheAttemptNamingTheFlag) {
  ASSERT_NO_FATAL_FAILURE(Join());
  // The worker's own clock, kept moving so that any backoff between retries passes.
  SimulatedClock worker_clock;
  std::atomic<bool> stop{false};
  std::thread ticker([&] {
    while (!stop.load()) {
      worker_clock.Advance(absl::Seconds(1));
      absl::SleepFor(absl::Milliseconds(1));
    }
  });
  {
    Reporter reporter(
        link_.get(), job_, 1, [this] { return worker_; }, DefaultFileSystem(), &worker_clock,
        nullptr);
    reporter.AddCheckpoint(Header(10), WriteCheckpoint(100 << 10));
    dino::v1::ReportResultRequest result;
    result.set_job_id(job_);
    result.set_attempt(1);
    result.set_rank(0);
    result.set_outcome(dino::v1::ATTEMPT_OUTCOME_SUCCEEDED);
    reporter.SetResult(result);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    absl::Status drained = reporter.Drain([&] { return absl::Now() > deadline; });
    EXPECT_FALSE(absl::IsCancelled(drained)) << "still retrying: " << drained;
    EXPECT_THAT(std::string(reporter.refusal().message()), HasSubstr("--max-checkpoint-bytes"));
  }
  stop = true;
  ticker.join();

  grpc::ClientContext context;
  dino::v1::GetJobRequest request;
  request.set_job_id(job_);
  dino::v1::Job job;
  ASSERT_TRUE(jobs_->GetJob(&context, request, &job).ok());
  EXPECT_EQ(job.state(), dino::v1::JOB_STATE_FAILED);  // Not retried: it would be refused again.
  ASSERT_GE(job.attempts_size(), 1);
  EXPECT_EQ(job.attempts(0).failure_reason(), dino::v1::FAILURE_REASON_COORDINATOR_LIMIT);
  EXPECT_THAT(job.attempts(0).failure_message(), HasSubstr("--max-checkpoint-bytes=65536"));
}

}  // namespace
}  // namespace dino::agent
