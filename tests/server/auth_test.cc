// Tokens and roles through an in-process coordinator: the tokens file format, the full role x RPC
// matrix (every JobService and WorkerService method for each role, no token and a wrong token),
// that a denied call never reaches its handler, ownership of CancelJob for submitters,
// Job.submitter (also for jobs stored before the field existed), the per-submitter queue cap, and
// the open health service.
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/sha256.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "dino/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth_interceptor.h"
#include "server/auth_tokens.h"
#include "server/coordinator_server.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;

constexpr char kViewer[] = "viewer-token-1";
constexpr char kSubmitter[] = "submitter-token-2";
constexpr char kOtherSubmitter[] = "submitter-token-3";
constexpr char kAdmin[] = "admin-token-4";
constexpr char kWorker[] = "worker-token-5";

std::string TokensFile() {
  return absl::StrCat("# name role\n", Sha256::Of(kViewer), " vera viewer\n",
                      Sha256::Of(kSubmitter), "  sam submitter   # a comment\n\n",
                      Sha256::Of(kOtherSubmitter), "\tsue\tsubmitter\n", Sha256::Of(kAdmin),
                      " root admin\n", Sha256::Of(kWorker), " gpu-node worker\n");
}

TEST(TokenTableTest, ParsesEntriesAndAuthenticatesOnlyKnownTokens) {
  auto table = TokenTable::Parse(TokensFile(), "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 5u);
  auto sam = table->Authenticate(kSubmitter);
  ASSERT_TRUE(sam.has_value());
  EXPECT_EQ(sam->name, "sam");
  EXPECT_EQ(sam->role, Role::kSubmitter);
  EXPECT_EQ(table->Authenticate(kWorker)->role, Role::kWorker);
  EXPECT_FALSE(table->Authenticate("nope").has_value());
  EXPECT_FALSE(table->Authenticate("").has_value());
  // The file holds hashes: the hash itself is not a token.
  EXPECT_FALSE(table->Authenticate(Sha256::Of(kAdmin)).has_value());
}

TEST(TokenTableTest, BadLinesNameTheLine) {
  const std::string hash = Sha256::Of("t");
  struct Case {
    std::string text;
    std::string expected;
  } cases[] = {
      {absl::StrCat("# ok\n", hash, " a\n"), "f:2: expected"},
      {"abc a viewer\n", "f:1: the first field must be the 64 hex digits"},
      {absl::StrCat(std::string(63, 'a'), "g a viewer\n"), "f:1: the first field"},
      {absl::StrCat("\n\n", hash, " a owner\n"), "f:3: unknown role \"owner\""},
      {absl::StrCat(hash, " a viewer\n", hash, " b admin\n"), "f:2: the same token hash"},
      {absl::StrCat(hash, " a viewer extra\n"), "f:1: expected"},
  };
  for (const Case& c : cases) {
    auto table = TokenTable::Parse(c.text, "f");
    ASSERT_FALSE(table.ok()) << c.text;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(table.status().message()), HasSubstr(c.expected));
  }
  EXPECT_EQ(TokenTable::Load("/nonexistent/tokens").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

class AuthServerTest : public ::testing::Test {
 protected:
  void StartServer(int max_queued_per_submitter = 0) {
    ServerOptions options;
    options.listen = "";
    options.data_dir = testing::NewTempDir("auth");
    options.tick_interval = absl::ZeroDuration();
    options.coordinator.max_queued_per_submitter = max_queued_per_submitter;
    auto tokens = TokenTable::Parse(TokensFile(), "tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    options.auth_tokens = std::move(*tokens);
    registry_ = std::make_unique<metrics::Registry>();
    auto server = CoordinatorServer::Start(options, &clock_, DefaultFileSystem(), registry_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = server_->InProcessChannel();
    jobs_ = dino::v1::JobService::NewStub(channel_);
    workers_ = dino::v1::WorkerService::NewStub(channel_);
  }

  void SetUp() override { StartServer(); }

  static void Authorize(grpc::ClientContext* context, const std::string& token) {
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  grpc::Status Submit(const std::string& token, std::string* job_id = nullptr) {
    grpc::ClientContext context;
    Authorize(&context, token);
    dino::v1::SubmitJobRequest request;
    *request.mutable_spec() = testing::TinySpec(1);
    dino::v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    if (job_id != nullptr) *job_id = response.job().id();
    return status;
  }

  grpc::Status Cancel(const std::string& token, const std::string& job_id) {
    grpc::ClientContext context;
    Authorize(&context, token);
    dino::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    dino::v1::Job response;
    return jobs_->CancelJob(&context, request, &response);
  }

  dino::v1::Job Get(const std::string& job_id) {
    grpc::ClientContext context;
    Authorize(&context, kAdmin);
    dino::v1::GetJobRequest request;
    request.set_job_id(job_id);
    dino::v1::Job job;
    EXPECT_TRUE(jobs_->GetJob(&context, request, &job).ok());
    return job;
  }

  std::vector<dino::v1::Job> List() {
    grpc::ClientContext context;
    Authorize(&context, kAdmin);
    dino::v1::ListJobsRequest request;
    request.set_page_size(500);
    dino::v1::ListJobsResponse response;
    EXPECT_TRUE(jobs_->ListJobs(&context, request, &response).ok());
    return {response.jobs().begin(), response.jobs().end()};
  }

  int CountWorkers() {
    grpc::ClientContext context;
    Authorize(&context, kAdmin);
    dino::v1::ListWorkersRequest request;
    dino::v1::ListWorkersResponse response;
    EXPECT_TRUE(jobs_->ListWorkers(&context, request, &response).ok());
    return response.workers_size();
  }

  // Calls `rpc` with `token`, on sams_job_ (queued, submitted by "sam") or, for WatchJob, on
  // terminal_job_ (cancelled, so the stream ends).
  grpc::Status Call(const std::string& rpc, const std::string& token) {
    grpc::ClientContext context;
    Authorize(&context, token);
    if (rpc == "JobService.SubmitJob") return Submit(token);
    if (rpc == "JobService.GetJob") {
      dino::v1::GetJobRequest request;
      request.set_job_id(sams_job_);
      dino::v1::Job response;
      return jobs_->GetJob(&context, request, &response);
    }
    if (rpc == "JobService.ListJobs") {
      dino::v1::ListJobsResponse response;
      return jobs_->ListJobs(&context, dino::v1::ListJobsRequest(), &response);
    }
    if (rpc == "JobService.CancelJob") return Cancel(token, sams_job_);
    if (rpc == "JobService.WatchJob") {
      dino::v1::WatchJobRequest request;
      request.set_job_id(terminal_job_);
      auto reader = jobs_->WatchJob(&context, request);
      dino::v1::JobEvent event;
      while (reader->Read(&event)) {
      }
      return reader->Finish();
    }
    if (rpc == "JobService.ListCheckpoints") {
      dino::v1::ListCheckpointsRequest request;
      request.set_job_id(sams_job_);
      dino::v1::ListCheckpointsResponse response;
      return jobs_->ListCheckpoints(&context, request, &response);
    }
    if (rpc == "JobService.DownloadCheckpoint" || rpc == "WorkerService.DownloadCheckpoint") {
      dino::v1::DownloadCheckpointRequest request;
      request.set_job_id(sams_job_);
      auto reader = rpc[0] == 'J' ? jobs_->DownloadCheckpoint(&context, request)
                                  : workers_->DownloadCheckpoint(&context, request);
      dino::v1::DownloadCheckpointResponse chunk;
      while (reader->Read(&chunk)) {
      }
      return reader->Finish();
    }
    if (rpc == "JobService.GetJobMetrics") {
      dino::v1::GetJobMetricsRequest request;
      request.set_job_id(sams_job_);
      dino::v1::GetJobMetricsResponse response;
      return jobs_->GetJobMetrics(&context, request, &response);
    }
    if (rpc == "JobService.ListWorkers") {
      dino::v1::ListWorkersResponse response;
      return jobs_->ListWorkers(&context, dino::v1::ListWorkersRequest(), &response);
    }
    if (rpc == "WorkerService.Register") {
      dino::v1::RegisterRequest request;
      request.set_name("w");
      request.set_device("cpu");
      request.set_rendezvous_address("127.0.0.1:29500");
      dino::v1::RegisterResponse response;
      return workers_->Register(&context, request, &response);
    }
    if (rpc == "WorkerService.Connect") {
      auto stream = workers_->Connect(&context);
      stream->WritesDone();
      dino::v1::CoordinatorMessage message;
      while (stream->Read(&message)) {
      }
      return stream->Finish();
    }
    if (rpc == "WorkerService.ReportProgress") {
      dino::v1::ReportProgressResponse response;
      return workers_->ReportProgress(&context, dino::v1::ReportProgressRequest(), &response);
    }
    if (rpc == "WorkerService.UploadCheckpoint") {
      dino::v1::UploadCheckpointResponse response;
      auto writer = workers_->UploadCheckpoint(&context, &response);
      writer->WritesDone();
      return writer->Finish();
    }
    if (rpc == "WorkerService.ReportResult") {
      dino::v1::ReportResultResponse response;
      return workers_->ReportResult(&context, dino::v1::ReportResultRequest(), &response);
    }
    ADD_FAILURE() << "no call for " << rpc;
    return grpc::Status::CANCELLED;
  }

  SimulatedClock clock_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dino::v1::JobService::Stub> jobs_;
  std::unique_ptr<dino::v1::WorkerService::Stub> workers_;
  std::string sams_job_;
  std::string terminal_job_;
};

TEST_F(AuthServerTest, EveryRoleAgainstEveryRpc) {
  ASSERT_TRUE(Submit(kSubmitter, &sams_job_).ok());
  ASSERT_TRUE(Submit(kAdmin, &terminal_job_).ok());
  ASSERT_TRUE(Cancel(kAdmin, terminal_job_).ok());
  const size_t jobs_before = List().size();
  ASSERT_EQ(CountWorkers(), 0);

  const std::vector<std::string> job_rpcs = {
      "JobService.SubmitJob",          "JobService.GetJob",        "JobService.ListJobs",
      "JobService.CancelJob",          "JobService.WatchJob",      "JobService.ListCheckpoints",
      "JobService.DownloadCheckpoint", "JobService.GetJobMetrics", "JobService.ListWorkers"};
  const std::vector<std::string> worker_rpcs = {
      "WorkerService.Register",       "WorkerService.Connect",
      "WorkerService.ReportProgress", "WorkerService.UploadCheckpoint",
      "WorkerService.ReportResult",   "WorkerService.DownloadCheckpoint"};
  // The services must not have grown methods this matrix does not cover.
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  EXPECT_EQ(pool->FindServiceByName("dino.v1.JobService")->method_count(),
            static_cast<int>(job_rpcs.size()));
  EXPECT_EQ(pool->FindServiceByName("dino.v1.WorkerService")->method_count(),
            static_cast<int>(worker_rpcs.size()));

  const std::set<std::string> viewer = {
      "JobService.GetJob",          "JobService.ListJobs",           "JobService.WatchJob",
      "JobService.ListCheckpoints", "JobService.DownloadCheckpoint", "JobService.GetJobMetrics",
      "JobService.ListWorkers"};
  std::set<std::string> submitter = viewer;
  submitter.insert({"JobService.SubmitJob", "JobService.CancelJob"});
  std::set<std::string> all(job_rpcs.begin(), job_rpcs.end());
  all.insert(worker_rpcs.begin(), worker_rpcs.end());
  const std::set<std::string> worker(worker_rpcs.begin(), worker_rpcs.end());
  struct Caller {
    std::string label;
    std::string token;
    std::set<std::string> allowed;
    grpc::StatusCode denial;
  };
  const std::vector<Caller> callers = {
      {"viewer", kViewer, viewer, grpc::StatusCode::PERMISSION_DENIED},
      {"submitter", kSubmitter, submitter, grpc::StatusCode::PERMISSION_DENIED},
      {"admin", kAdmin, all, grpc::StatusCode::PERMISSION_DENIED},
      {"worker", kWorker, worker, grpc::StatusCode::PERMISSION_DENIED},
      {"no token", "", {}, grpc::StatusCode::UNAUTHENTICATED},
      {"wrong token", "not-a-token", {}, grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const Caller& caller : callers) {
    for (const std::string& rpc : all) {
      grpc::Status status = Call(rpc, caller.token);
      if (caller.allowed.count(rpc) > 0) {
        EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << caller.label << " " << rpc << ": " << status.error_message();
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << caller.label << " " << rpc << ": " << status.error_message();
      } else {
        EXPECT_EQ(status.error_code(), caller.denial)
            << caller.label << " " << rpc << ": " << status.error_message();
      }
    }
  }
  // Denied calls never reached a handler: only the submitter's and the admin's SubmitJob made a
  // job, and only the worker's and the admin's Register made a worker.
  std::vector<dino::v1::Job> jobs = List();
  ASSERT_EQ(jobs.size(), jobs_before + 2);
  std::multiset<std::string> submitters;
  for (const dino::v1::Job& job : jobs) submitters.insert(job.submitter());
  EXPECT_EQ(submitters, (std::multiset<std::string>{"root", "root", "sam", "sam"}));
  EXPECT_EQ(CountWorkers(), 2);
  EXPECT_EQ(Get(sams_job_).state(), dino::v1::JOB_STATE_CANCELLED);
}

TEST_F(AuthServerTest, SubmitterCancelsOnlyItsOwnJobs) {
  std::string sams, sues, roots;
  ASSERT_TRUE(Submit(kSubmitter, &sams).ok());
  ASSERT_TRUE(Submit(kOtherSubmitter, &sues).ok());
  ASSERT_TRUE(Submit(kAdmin, &roots).ok());
  EXPECT_EQ(Get(sams).submitter(), "sam");
  EXPECT_EQ(Get(sues).submitter(), "sue");
  EXPECT_EQ(Get(roots).submitter(), "root");

  grpc::Status status = Cancel(kSubmitter, sues);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("only its own jobs"));
  EXPECT_EQ(Cancel(kSubmitter, roots).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Get(sues).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(Get(roots).state(), dino::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(Cancel(kSubmitter, "job-999").error_code(), grpc::StatusCode::NOT_FOUND);

  EXPECT_TRUE(Cancel(kSubmitter, sams).ok());
  EXPECT_EQ(Get(sams).state(), dino::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(Cancel(kAdmin, sues).ok());  // An admin cancels anyone's job.
  EXPECT_EQ(Get(sues).state(), dino::v1::JOB_STATE_CANCELLED);
}

TEST_F(AuthServerTest, MessagesTellMissingFromUnknownTokens) {
  grpc::Status missing = Submit("");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("authorization: Bearer"));
  grpc::Status unknown = Submit("guess");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(unknown.error_message(), HasSubstr("unknown token"));
  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("Basic ") + kAdmin);
  dino::v1::ListJobsResponse response;
  grpc::Status basic = jobs_->ListJobs(&context, dino::v1::ListJobsRequest(), &response);
  EXPECT_EQ(basic.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status denied = Submit(kViewer);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("role viewer may not call"));
  // The gRPC metrics count denials under their real codes.
  const std::string exposition = registry_->Render();
  EXPECT_THAT(exposition, HasSubstr("grpc_method=\"SubmitJob\",grpc_code=\"PERMISSION_DENIED\"}"));
  EXPECT_THAT(exposition, HasSubstr("grpc_method=\"SubmitJob\",grpc_code=\"UNAUTHENTICATED\"}"));
  EXPECT_THAT(exposition, HasSubstr("grpc_method=\"ListJobs\",grpc_code=\"UNAUTHENTICATED\"}"));
  EXPECT_THAT(exposition, ::testing::Not(HasSubstr("UNIMPLEMENTED")));
}

TEST_F(AuthServerTest, HealthNeedsNoToken) {
  grpc::ClientContext context;
  grpc::Slice empty("", 0);  // An empty HealthCheckRequest: the whole server.
  grpc::ByteBuffer request(&empty, 1), response;
  grpc::GenericStub stub(channel_);
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(AuthServerTest, QueuedJobsPerSubmitterAreCapped) {
  server_.reset();
  StartServer(/*max_queued_per_submitter=*/2);
  std::string first;
  ASSERT_TRUE(Submit(kSubmitter, &first).ok());
  ASSERT_TRUE(Submit(kSubmitter).ok());
  grpc::Status third = Submit(kSubmitter);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.error_message(), HasSubstr("--max-queued-per-submitter=2"));
  EXPECT_TRUE(Submit(kOtherSubmitter).ok());    // The cap is per submitter.
  ASSERT_TRUE(Cancel(kSubmitter, first).ok());  // A cancelled job no longer counts.
  EXPECT_TRUE(Submit(kSubmitter).ok());
}

TEST(SubmitterTest, AnonymousWithoutAuthAndForJobsStoredBeforeTheField) {
  const std::string dir = testing::NewTempDir("anon");
  {
    auto store = OpenSqliteStore(dir + "/coordinator.db");
    ASSERT_TRUE(store.ok()) << store.status();
    dino::v1::Job legacy;  // As an older coordinator wrote it: no submitter.
    legacy.set_id("job-1");
    legacy.set_state(dino::v1::JOB_STATE_CANCELLED);
    *legacy.mutable_spec() = testing::TinySpec(1);
    ASSERT_TRUE((*store)->SaveJob(legacy, {}).ok());
  }
  SimulatedClock clock;
  ServerOptions options;
  options.listen = "";
  options.data_dir = dir;
  options.tick_interval = absl::ZeroDuration();
  auto server = CoordinatorServer::Start(options, &clock, DefaultFileSystem(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  auto jobs = dino::v1::JobService::NewStub((*server)->InProcessChannel());
  grpc::ClientContext submit_context;
  dino::v1::SubmitJobRequest request;
  *request.mutable_spec() = testing::TinySpec(1);
  dino::v1::SubmitJobResponse submitted;
  ASSERT_TRUE(jobs->SubmitJob(&submit_context, request, &submitted).ok());
  EXPECT_EQ(submitted.job().submitter(), "anonymous");
  for (const std::string& id : {std::string("job-1"), submitted.job().id()}) {
    grpc::ClientContext context;
    dino::v1::GetJobRequest get;
    get.set_job_id(id);
    dino::v1::Job job;
    ASSERT_TRUE(jobs->GetJob(&context, get, &job).ok()) << id;
    EXPECT_EQ(job.submitter(), "anonymous") << id;
  }
}

}  // namespace
}  // namespace dino::server
