// Who may act on what, decided where the action happens: a submitter's CancelJob is checked in the
// Coordinator's critical section (also for a job submitted after the interceptor looked), and a
// worker id is bound to the credential that registered it.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth_gate.h"
#include "server/auth_interceptor.h"
#include "server/auth_tokens.h"
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
    jobs_ = std::make_unique<JobServiceImpl>(coordinator_.get(), &calls_);
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

}  // namespace
}  // namespace dino::server
