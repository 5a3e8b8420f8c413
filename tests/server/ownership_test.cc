// Who may act on what, decided where the action happens: a submitter's CancelJob is checked in the
// Coordinator's critical section (also for a job submitted after the interceptor looked), and a
// worker id is bound to the credential that registered it.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "dino/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth_gate.h"
#include "server/auth_interceptor.h"
#include "server/auth_tokens.h"
#include "server/coordinator_server.h"
#include "server/job_service.h"
#include "tests/server/coordinator_fixture.h"

namespace dino::server {
namespace {

using testing::CoordinatorFixture;
using ::testing::HasSubstr;
using testing::TinySpec;

class CancelOwnershipTest : public CoordinatorFixture {};

TEST_F(CancelOwnershipTest, OnlyTheSubmitterOrAnAdminCancels) {
  auto submitted = coordinator_->SubmitJob(TinySpec(1), JobCaller{"sue", false});
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job = submitted->job().id();

  auto denied = coordinator_->CancelJob(job, "", JobCaller{"sam", false});
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.status().message()), HasSubstr("only its own jobs"));
  EXPECT_EQ(coordinator_->GetJob(job)->state(), dino::v1::JOB_STATE_QUEUED);

  EXPECT_EQ(coordinator_->CancelJob("job-404", "", JobCaller{"sam", false}).status().code(),
            absl::StatusCode::kNotFound);
  auto by_sue = coordinator_->CancelJob(job, "", JobCaller{"sue", false});
  ASSERT_TRUE(by_sue.ok()) << by_sue.status();
  EXPECT_EQ(by_sue->state(), dino::v1::JOB_STATE_CANCELLED);

  const std::string other = Submit(TinySpec(1));
  EXPECT_TRUE(coordinator_->CancelJob(other, "", JobCaller{"root", true}).ok());
}

constexpr char kSam[] = "sam-token";
constexpr char kSue[] = "sue-token";

// A JobService behind the real interceptor and gate, whose ownership lookup lets a job be
// submitted between the interceptor's check and the handler: exactly the interleaving of a
// submitter cancelling "job-N" just before someone else's submission becomes job-N.
class CancelRaceTest : public CoordinatorFixture {
 protected:
  void SetUp() override {
    CoordinatorFixture::SetUp();
    auto tokens = TokenTable::Parse(
        absl::StrCat(Sha256::Of(kSam), " sam submitter\n", Sha256::Of(kSue), " sue submitter\n"),
        "tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = std::make_unique<TokenTable>(std::move(*tokens));
    jobs_ = std::make_unique<JobServiceImpl>(coordinator_.get(), ServerLimits(), &calls_);
    gated_ =
        NewAuthGatedService(jobs_.get(),
                            google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
                                dino::v1::JobService::service_full_name()),
                            &calls_);
    Coordinator* coordinator = coordinator_.get();
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
    factories.push_back(NewAuthInterceptorFactory(
        tokens_.get(), &calls_,
        [coordinator](const std::string& job_id) -> absl::StatusOr<std::string> {
          absl::StatusOr<dino::v1::Job> job = coordinator->GetJob(job_id);
          if (!job.ok()) {
            // Not there when looked up; sue's submission takes the id before the handler runs.
            EXPECT_TRUE(coordinator->SubmitJob(TinySpec(1), JobCaller{"sue", false}).ok());
            return job.status();
          }
          return job->submitter();
        }));
    grpc::ServerBuilder builder;
    builder.RegisterService(gated_.get());
    builder.experimental().SetInterceptorCreators(std::move(factories));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = dino::v1::JobService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    coordinator_->Shutdown();
  }

  AuthCalls calls_;
  std::unique_ptr<TokenTable> tokens_;
  std::unique_ptr<JobServiceImpl> jobs_;
  std::unique_ptr<grpc::Service> gated_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<dino::v1::JobService::Stub> stub_;
};

TEST_F(CancelRaceTest, AJobSubmittedAfterTheInterceptorLookedIsStillProtected) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kSam));
  dino::v1::CancelJobRequest request;
  request.set_job_id("job-1");  // The next id: not yet submitted.
  dino::v1::Job response;
  grpc::Status status = stub_->CancelJob(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("submitted by \"sue\""));
  auto job = coordinator_->GetJob("job-1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->submitter(), "sue");
  EXPECT_EQ(job->state(), dino::v1::JOB_STATE_QUEUED);
}

class WorkerIdentityTest : public CoordinatorFixture {
 protected:
  static dino::v1::RegisterRequest Registration(const std::string& previous = "") {
    dino::v1::RegisterRequest request;
    request.set_name("node");
    request.set_device("cpu");
    request.set_rendezvous_address("127.0.0.1:29500");
    request.set_previous_worker_id(previous);
    return request;
  }
};

TEST_F(WorkerIdentityTest, AnotherCredentialCannotActAsARegisteredWorker) {
  auto registered = coordinator_->RegisterWorker(Registration(), "node-a");
  ASSERT_TRUE(registered.ok()) << registered.status();
  const std::string id = registered->worker_id();
  auto channel = std::make_shared<testing::RecordingChannel>();
  ASSERT_TRUE(coordinator_->AttachWorker(id, channel, "node-a").ok());
  EXPECT_EQ(coordinator_->ListWorkers(false)[0].registered_by(), "node-a");
  const std::string job = Submit(TinySpec(1));
  ASSERT_EQ(coordinator_->GetJob(job)->state(), dino::v1::JOB_STATE_RUNNING);

  auto expect_denied = [&](const absl::Status& status, const std::string& what) {
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << what << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(absl::StrCat("worker ", id))) << what;
  };
  expect_denied(coordinator_->RegisterWorker(Registration(id), "node-b").status(), "register");
  expect_denied(
      coordinator_->AttachWorker(id, std::make_shared<testing::RecordingChannel>(), "node-b"),
      "hello");
  dino::v1::ReportProgressRequest progress = ProgressFrom(TestWorker{id, channel}, job);
  progress.add_stats()->set_step(1);
  expect_denied(coordinator_->ReportProgress(progress, "node-b").status(), "progress");
  dino::v1::CheckpointUploadHeader header;
  header.set_worker_id(id);
  header.set_job_id(job);
  header.set_attempt(1);
  header.set_size_bytes(1);
  expect_denied(coordinator_->BeginCheckpointUpload(header, "node-b").status(), "upload");
  dino::v1::ReportResultRequest result;
  result.set_worker_id(id);
  result.set_job_id(job);
  result.set_attempt(1);
  result.set_outcome(dino::v1::ATTEMPT_OUTCOME_FAILED);
  result.set_failure_reason(dino::v1::FAILURE_REASON_OUT_OF_MEMORY);
  expect_denied(coordinator_->ReportResult(result, "node-b"), "result");
  EXPECT_EQ(coordinator_->GetJob(job)->state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(coordinator_->GetJob(job)->has_latest_stats());

  // The owner itself carries on, and registering again keeps its id.
  EXPECT_TRUE(coordinator_->ReportProgress(progress, "node-a").ok());
  auto again = coordinator_->RegisterWorker(Registration(id), "node-a");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->worker_id(), id);
}

TEST_F(WorkerIdentityTest, OnlyTheAssignedRankZeroEndsTheJob) {
  TestWorker first = AddWorker();
  TestWorker second = AddWorker();
  const std::string job = Submit(TinySpec(2));
  const dino::v1::Job running = *coordinator_->GetJob(job);
  ASSERT_EQ(running.state(), dino::v1::JOB_STATE_RUNNING);
  const auto& ranks = running.attempts(0).ranks();
  const TestWorker& rank0 = ranks[0].worker_id() == first.id ? first : second;
  const TestWorker& rank1 = ranks[0].worker_id() == first.id ? second : first;

  // Rank 1 claims to be rank 0: its success is only its own.
  ASSERT_TRUE(Result(job, 1, rank1, /*rank=*/0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(coordinator_->GetJob(job)->state(), dino::v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(Result(job, 1, rank0, /*rank=*/0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(coordinator_->GetJob(job)->state(), dino::v1::JOB_STATE_SUCCEEDED);
}

constexpr char kNodeA[] = "node-a-token";
constexpr char kNodeB[] = "node-b-token";

TEST(WorkerIdentityServerTest, AWorkerTokenCannotTakeAnotherWorkersId) {
  SimulatedClock clock;
  ServerOptions options;
  options.listen = "";
  options.data_dir = testing::NewTempDir("worker_identity");
  options.tick_interval = absl::ZeroDuration();
  auto tokens = TokenTable::Parse(
      absl::StrCat(Sha256::Of(kNodeA), " node-a worker\n", Sha256::Of(kNodeB), " node-b worker\n"),
      "tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  options.auth_tokens = std::move(*tokens);
  auto server = CoordinatorServer::Start(options, &clock, DefaultFileSystem(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  auto workers = dino::v1::WorkerService::NewStub((*server)->InProcessChannel());
  auto authorize = [](grpc::ClientContext* context, const std::string& token) {
    context->AddMetadata("authorization", "Bearer " + token);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  };

  dino::v1::RegisterRequest request;
  request.set_name("a");
  request.set_device("cpu");
  request.set_rendezvous_address("127.0.0.1:29500");
  dino::v1::RegisterResponse registered;
  {
    grpc::ClientContext context;
    authorize(&context, kNodeA);
    ASSERT_TRUE(workers->Register(&context, request, &registered).ok());
  }
  const std::string id = registered.worker_id();
  {
    grpc::ClientContext context;
    authorize(&context, kNodeB);
    request.set_previous_worker_id(id);
    dino::v1::RegisterResponse response;
    grpc::Status status = workers->Register(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(id));
  }
  {
    grpc::ClientContext context;
    authorize(&context, kNodeB);
    auto stream = workers->Connect(&context);
    dino::v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(id);
    stream->Write(hello);
    stream->WritesDone();
    dino::v1::CoordinatorMessage message;
    while (stream->Read(&message)) {
    }
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(id));
  }
  (*server)->Shutdown(absl::ZeroDuration());
}

}  // namespace
}  // namespace dino::server
