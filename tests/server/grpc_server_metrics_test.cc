// grpc_server_* series from the interceptor, through a real CoordinatorServer on an in-process
// channel: unary, client-, server- and bidi-streaming calls, OK and error codes, a call the client
// cancels, and the handling-time histogram on a simulated clock.
#include "server/grpc_server_metrics.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "dino/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/grpc_service_fixture.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kJobs[] = "dino.v1.JobService";
constexpr char kWorkers[] = "dino.v1.WorkerService";

// The value of the sample `series` (name and labels exactly as rendered), or -1 when absent.
double Sample(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return -1;
}

std::string Started(const std::string& service, const std::string& method,
                    const std::string& type) {
  return absl::StrCat("grpc_server_started_total{grpc_service=\"", service, "\",grpc_method=\"",
                      method, "\",grpc_type=\"", type, "\"}");
}

std::string Handled(const std::string& service, const std::string& method,
                    const std::string& code) {
  return absl::StrCat("grpc_server_handled_total{grpc_service=\"", service, "\",grpc_method=\"",
                      method, "\",grpc_code=\"", code, "\"}");
}

std::string Handling(const std::string& service, const std::string& method, const std::string& type,
                     const std::string& suffix, const std::string& le = "") {
  return absl::StrCat("grpc_server_handling_seconds", suffix, "{grpc_service=\"", service,
                      "\",grpc_method=\"", method, "\",grpc_type=\"", type, "\"",
                      le.empty() ? "" : absl::StrCat(",le=\"", le, "\""), "}");
}

TEST(GrpcServerMetricsNamesTest, SplitsMethodsAndNamesCodesAndTypes) {
  EXPECT_EQ(GrpcServerMetrics::SplitMethod("/dino.v1.JobService/SubmitJob"),
            std::make_pair(std::string(kJobs), std::string("SubmitJob")));
  EXPECT_EQ(GrpcServerMetrics::SplitMethod("garbage"),
            std::make_pair(std::string("unknown"), std::string("garbage")));
  EXPECT_EQ(GrpcServerMetrics::SplitMethod("/OnlyService/"),
            std::make_pair(std::string("unknown"), std::string("/OnlyService/")));
  EXPECT_STREQ(GrpcServerMetrics::CodeName(grpc::StatusCode::OK), "OK");
  EXPECT_STREQ(GrpcServerMetrics::CodeName(grpc::StatusCode::DEADLINE_EXCEEDED),
               "DEADLINE_EXCEEDED");
  EXPECT_STREQ(GrpcServerMetrics::CodeName(grpc::StatusCode::FAILED_PRECONDITION),
               "FAILED_PRECONDITION");
  EXPECT_STREQ(GrpcServerMetrics::CodeName(grpc::StatusCode::UNAVAILABLE), "UNAVAILABLE");
  EXPECT_STREQ(GrpcServerMetrics::CodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_STREQ(GrpcServerMetrics::CodeName(static_cast<grpc::StatusCode>(99)), "UNKNOWN");
  using Type = grpc::experimental::ServerRpcInfo::Type;
  EXPECT_STREQ(GrpcServerMetrics::TypeName(Type::UNARY), "unary");
  EXPECT_STREQ(GrpcServerMetrics::TypeName(Type::CLIENT_STREAMING), "client_stream");
  EXPECT_STREQ(GrpcServerMetrics::TypeName(Type::SERVER_STREAMING), "server_stream");
  EXPECT_STREQ(GrpcServerMetrics::TypeName(Type::BIDI_STREAMING), "bidi_stream");
}

TEST(GrpcServerMetricsNamesTest, SecondRegistrationFails) {
  SimulatedClock clock;
  metrics::Registry registry;
  ASSERT_TRUE(GrpcServerMetrics::Create(&registry, &clock).ok());
  EXPECT_EQ(GrpcServerMetrics::Create(&registry, &clock).status().code(),
            absl::StatusCode::kAlreadyExists);
}

class GrpcServerMetricsTest : public GrpcServiceTest {
 protected:
  double Value(const std::string& series) const { return Sample(registry_.Render(), series); }
};

TEST_F(GrpcServerMetricsTest, UnaryCallsAreCountedByCode) {
  std::string id;
  ASSERT_TRUE(TrySubmit(testing::TinySpec(), &id).ok());
  ASSERT_TRUE(TrySubmit(testing::TinySpec(), nullptr).ok());
  dino::v1::JobSpec bad = testing::TinySpec();
  bad.mutable_resources()->set_world_size(-1);
  EXPECT_EQ(TrySubmit(bad, nullptr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  {
    grpc::ClientContext context;
    dino::v1::GetJobRequest request;
    request.set_job_id("job-does-not-exist");
    dino::v1::Job job;
    EXPECT_EQ(jobs_->GetJob(&context, request, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_EQ(Value(Started(kJobs, "SubmitJob", "unary")), 3);
  EXPECT_EQ(Value(Handled(kJobs, "SubmitJob", "OK")), 2);
  EXPECT_EQ(Value(Handled(kJobs, "SubmitJob", "INVALID_ARGUMENT")), 1);
  EXPECT_EQ(Value(Started(kJobs, "GetJob", "unary")), 1);
  EXPECT_EQ(Value(Handled(kJobs, "GetJob", "NOT_FOUND")), 1);
  EXPECT_EQ(Value(Handled(kJobs, "GetJob", "OK")), -1);  // No series for a code never seen.
  // The simulated clock did not move: every unary call took 0 s, in the first bucket.
  EXPECT_EQ(Value(Handling(kJobs, "SubmitJob", "unary", "_count")), 3);
  EXPECT_EQ(Value(Handling(kJobs, "SubmitJob", "unary", "_sum")), 0);
  EXPECT_EQ(Value(Handling(kJobs, "SubmitJob", "unary", "_bucket", "0.0005")), 3);
}

TEST_F(GrpcServerMetricsTest, StreamingCallsCarryTheirTypeAndCode) {
  // Bidi stream: Connect whose first message is not a hello fails with FAILED_PRECONDITION.
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
  // Client stream: an upload with no header is refused.
  {
    grpc::ClientContext context;
    dino::v1::UploadCheckpointResponse response;
    auto writer = workers_->UploadCheckpoint(&context, &response);
    writer->WritesDone();
    EXPECT_FALSE(writer->Finish().ok());
  }
  EXPECT_EQ(Value(Started(kWorkers, "Connect", "bidi_stream")), 1);
  EXPECT_EQ(Value(Handled(kWorkers, "Connect", "FAILED_PRECONDITION")), 1);
  EXPECT_EQ(Value(Started(kWorkers, "UploadCheckpoint", "client_stream")), 1);
  EXPECT_EQ(Value(Handling(kWorkers, "UploadCheckpoint", "client_stream", "_count")), 1);
  const std::string exposition = registry_.Render();
  EXPECT_THAT(exposition, HasSubstr("grpc_server_handled_total{grpc_service=\"dino.v1."
                                    "WorkerService\",grpc_method=\"UploadCheckpoint\""));
  EXPECT_THAT(exposition, Not(HasSubstr("UploadCheckpoint\",grpc_code=\"OK\"")));
}

// A WatchJob stream that lives 3 simulated seconds: the histogram puts it in the 5 s bucket.
TEST_F(GrpcServerMetricsTest, HistogramMeasuresTheCallOnTheClock) {
  std::string id;
  ASSERT_TRUE(TrySubmit(testing::TinySpec(), &id).ok());
  grpc::ClientContext watch_context;
  dino::v1::WatchJobRequest request;
  request.set_job_id(id);
  auto watch = jobs_->WatchJob(&watch_context, request);
  dino::v1::JobEvent event;
  ASSERT_TRUE(watch->Read(&event));  // QUEUED: the call has started.
  EXPECT_EQ(Value(Started(kJobs, "WatchJob", "server_stream")), 1);
  EXPECT_EQ(Value(Handling(kJobs, "WatchJob", "server_stream", "_count")), -1);
  clock_.Advance(absl::Seconds(3));
  {
    grpc::ClientContext context;
    dino::v1::CancelJobRequest cancel;
    cancel.set_job_id(id);
    dino::v1::Job response;
    ASSERT_TRUE(jobs_->CancelJob(&context, cancel, &response).ok());
  }
  while (watch->Read(&event)) {
  }
  ASSERT_TRUE(watch->Finish().ok());
  EXPECT_EQ(Value(Handled(kJobs, "WatchJob", "OK")), 1);
  EXPECT_EQ(Value(Handling(kJobs, "WatchJob", "server_stream", "_count")), 1);
  EXPECT_EQ(Value(Handling(kJobs, "WatchJob", "server_stream", "_sum")), 3);
  EXPECT_EQ(Value(Handling(kJobs, "WatchJob", "server_stream", "_bucket", "2.5")), 0);
  EXPECT_EQ(Value(Handling(kJobs, "WatchJob", "server_stream", "_bucket", "5")), 1);
  EXPECT_EQ(Value(Handling(kJobs, "WatchJob", "server_stream", "_bucket", "+Inf")), 1);
}

// A watch the client walks away from is still handled, as CANCELLED.
TEST_F(GrpcServerMetricsTest, ClientCancelledStreamIsCountedCancelled) {
  std::string id;
  ASSERT_TRUE(TrySubmit(testing::TinySpec(), &id).ok());
  {
    grpc::ClientContext context;
    dino::v1::WatchJobRequest request;
    request.set_job_id(id);
    auto watch = jobs_->WatchJob(&context, request);
    dino::v1::JobEvent event;
    ASSERT_TRUE(watch->Read(&event));
    context.TryCancel();
    while (watch->Read(&event)) {
    }
    EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server learns of the cancellation asynchronously; wait for the count (bounded).
  for (int i = 0; i < 500 && Value(Handled(kJobs, "WatchJob", "CANCELLED")) != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Value(Handled(kJobs, "WatchJob", "CANCELLED")), 1);
  EXPECT_EQ(Value(Handling(kJobs, "WatchJob", "server_stream", "_count")), 1);
}

}  // namespace
}  // namespace dino::server
