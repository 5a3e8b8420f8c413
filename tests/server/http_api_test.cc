// HttpApi in process against a Coordinator on a SQLite store: routes, JSON bodies, status codes,
// bounded parameters and the token/role matrix; StreamJobEvents' frames and backlog bound.
#include "server/http_api.h"

#include <google/protobuf/util/json_util.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "server/http_event_stream.h"
#include "tests/server/coordinator_fixture.h"

namespace dino::server {
namespace {

using testing::CoordinatorFixture;

std::string TokenLine(const std::string& token, const std::string& name, const std::string& role) {
  return absl::StrCat(Sha256::Of(token), " ", name, " ", role, "\n");
}

template <typename Message>
Message Parse(const HttpResponse& response) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(response.body, &message);
  EXPECT_TRUE(status.ok()) << status.message() << " in " << response.body;
  return message;
}

std::string Header(const HttpResponse& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "";
}

class HttpApiTest : public CoordinatorFixture {
 protected:
  void SetUp() override {
    CoordinatorFixture::SetUp();
    auto tokens = TokenTable::Parse(
        TokenLine("viewer-token", "vera", "viewer") + TokenLine("sam-token", "sam", "submitter") +
            TokenLine("sue-token", "sue", "submitter") + TokenLine("admin-token", "ada", "admin") +
            TokenLine("worker-token", "wes", "worker"),
        "tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = std::make_unique<TokenTable>(*std::move(tokens));
    api_ = std::make_unique<HttpApi>(coordinator_.get(), tokens_.get());
  }

  HttpResponse Call(const std::string& method, const std::string& path, const std::string& query,
                    const std::string& token, const std::string& body = "") {
    HttpRequest request;
    request.method = method;
    request.path = path;
    request.query = query;
    request.body = body;
    request.remote = "127.0.0.1";
    if (!token.empty()) request.headers["authorization"] = "Bearer " + token;
    return api_->Handle(request);
  }
  HttpResponse Get(const std::string& path, const std::string& query = "",
                   const std::string& token = "viewer-token") {
    return Call("GET", path, query, token);
  }

  std::string SubmitAs(const std::string& submitter, const std::string& name = "tiny") {
    dino::v1::JobSpec spec = testing::TinySpec();
    spec.set_name(name);
    (*spec.mutable_labels())["team"] = submitter;
    auto response = coordinator_->SubmitJob(spec, JobCaller{submitter, false});
    EXPECT_TRUE(response.ok()) << response.status();
    return response->job().id();
  }

  dino::v1::JobState State(const std::string& job) { return coordinator_->GetJob(job)->state(); }

  static void ExpectError(const HttpResponse& response, int status, const std::string& field) {
    EXPECT_EQ(response.status, status) << response.body;
    if (!field.empty()) {
      EXPECT_TRUE(absl::StrContains(response.body, absl::StrCat("\"field\":\"", field, "\"")))
          << response.body;
    }
    EXPECT_TRUE(absl::StartsWith(response.body, "{\"error\":{\"code\":")) << response.body;
  }

  std::unique_ptr<TokenTable> tokens_;
  std::unique_ptr<HttpApi> api_;
};

TEST_F(HttpApiTest, ListsJobsAsProtoJsonWithStateLabelFiltersAndPaging) {
  const std::string a = SubmitAs("sam");
  const std::string b = SubmitAs("sue");
  HttpResponse all = Get("/api/v1/jobs");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.content_type, "application/json");
  EXPECT_EQ(Parse<dino::v1::ListJobsResponse>(all).jobs_size(), 2);
  // The JSON mapping's names and enum names, zero values included.
  EXPECT_TRUE(absl::StrContains(all.body, "\"state\":\"JOB_STATE_QUEUED\"")) << all.body;
  EXPECT_TRUE(absl::StrContains(all.body, "\"restarts\":0")) << all.body;

  EXPECT_EQ(Parse<dino::v1::ListJobsResponse>(Get("/api/v1/jobs", "state=queued")).jobs_size(), 2);
  EXPECT_EQ(Parse<dino::v1::ListJobsResponse>(Get("/api/v1/jobs", "state=RUNNING,SUCCEEDED"))
                .jobs_size(),
            0);
  auto sues = Parse<dino::v1::ListJobsResponse>(Get("/api/v1/jobs", "label=team%3Dsue"));
  ASSERT_EQ(sues.jobs_size(), 1);
  EXPECT_EQ(sues.jobs(0).id(), b);

  auto first = Parse<dino::v1::ListJobsResponse>(Get("/api/v1/jobs", "page_size=1"));
  ASSERT_EQ(first.jobs_size(), 1);
  ASSERT_FALSE(first.next_page_token().empty());
  auto second = Parse<dino::v1::ListJobsResponse>(
      Get("/api/v1/jobs", "page_size=1&page_token=" + first.next_page_token()));
  ASSERT_EQ(second.jobs_size(), 1);
  EXPECT_NE(first.jobs(0).id(), second.jobs(0).id());
  EXPECT_TRUE((first.jobs(0).id() == a) != (second.jobs(0).id() == a));

  HttpResponse job = Get("/api/v1/jobs/" + a);
  ASSERT_EQ(job.status, 200) << job.body;
  EXPECT_EQ(Parse<dino::v1::Job>(job).submitter(), "sam");
  EXPECT_EQ(Header(job, "Cache-Control"), "no-store");
}

TEST_F(HttpApiTest, BadParametersAre400NamingTheField) {
  const std::string job = SubmitAs("sam");
  ExpectError(Get("/api/v1/jobs", "page_size=9999"), 400, "page_size");
  ExpectError(Get("/api/v1/jobs", "page_size=ten"), 400, "page_size");
  ExpectError(Get("/api/v1/jobs", "page_size=1&page_size=2"), 400, "page_size");
  ExpectError(Get("/api/v1/jobs", "state=DANCING"), 400, "state");
  ExpectError(Get("/api/v1/jobs", "label=novalue"), 400, "label");
  ExpectError(Get("/api/v1/jobs", "colour=red"), 400, "colour");
  ExpectError(Get("/api/v1/jobs", "state=%zz"), 400, "state");
  ExpectError(Get("/api/v1/jobs", "page_token=" + std::string(300, 'x')), 400, "page_token");
  ExpectError(Get("/api/v1/jobs", "state=QUEUED&" + std::string(5000, 'a')), 400, "query");
  std::string many;
  for (int i = 0; i < 40; ++i) absl::StrAppend(&many, "state=QUEUED&");
  ExpectError(Get("/api/v1/jobs", many), 400, "query");
  ExpectError(Get("/api/v1/jobs/" + job + "/events", "after_index=-1"), 400, "after_index");
  ExpectError(Get("/api/v1/jobs/" + job + "/events", "limit=100000"), 400, "limit");
  ExpectError(Get("/api/v1/jobs/" + job + "/metrics", "series=nonsense"), 400, "series");
  ExpectError(Get("/api/v1/jobs/" + job + "/metrics", "max_points=-3"), 400, "max_points");
  ExpectError(Get("/api/v1/workers", "include_dead=maybe"), 400, "include_dead");
  ExpectError(Get("/api/v1/jobs/a b"), 400, "job_id");
  ExpectError(Get("/api/v1/jobs/" + std::string(200, 'j')), 400, "job_id");
  ExpectError(Get("/api/v1/jobs/" + job + "/checkpoints/..%2f/download"), 400, "checkpoint_id");
}

TEST_F(HttpApiTest, UnknownIdsAndRoutesAre404WrongMethodIs405) {
  ExpectError(Get("/api/v1/jobs/job-999"), 404, "job_id");
  ExpectError(Get("/api/v1/jobs/job-999/events"), 404, "job_id");
  ExpectError(Get("/api/v1/jobs/job-999/events/stream"), 404, "job_id");
  ExpectError(Get("/api/v1/jobs/job-999/metrics"), 404, "job_id");
  ExpectError(Get("/api/v1/jobs/job-999/checkpoints"), 404, "job_id");
  ExpectError(Call("POST", "/api/v1/jobs/job-999/cancel", "", "admin-token"), 404, "job_id");
  const std::string job = SubmitAs("sam");
  ExpectError(Get("/api/v1/jobs/" + job + "/checkpoints/ckpt-7/download"), 404, "checkpoint_id");
  ExpectError(Get("/api/v1/nothing"), 404, "");
  ExpectError(Get("/api/v2/jobs"), 404, "");
  HttpResponse wrong = Call("DELETE", "/api/v1/jobs/" + job, "", "admin-token");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(Header(wrong, "Allow"), "GET");
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + job + "/cancel", "", "admin-token").status, 405);
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_QUEUED);
}

TEST_F(HttpApiTest, TokensAndRolesMatchTheGrpcRules) {
  const std::string sams = SubmitAs("sam");
  const std::string sues = SubmitAs("sue");
  HttpResponse none = Get("/api/v1/jobs", "", "");
  ExpectError(none, 401, "");
  EXPECT_EQ(Header(none, "WWW-Authenticate"), "Bearer");
  ExpectError(Get("/api/v1/jobs", "", "not-a-token"), 401, "");
  HttpRequest basic;
  basic.method = "GET";
  basic.path = "/api/v1/jobs";
  basic.headers["authorization"] = "Basic dmVyYTp4";
  ExpectError(api_->Handle(basic), 401, "");
  // Worker tokens serve WorkerService only.
  ExpectError(Get("/api/v1/jobs", "", "worker-token"), 403, "");
  ExpectError(Get("/api/v1/workers", "", "worker-token"), 403, "");
  for (const char* token : {"viewer-token", "sam-token", "admin-token"}) {
    EXPECT_EQ(Get("/api/v1/jobs", "", token).status, 200) << token;
    EXPECT_EQ(Get("/api/v1/jobs/" + sams + "/events", "", token).status, 200) << token;
    EXPECT_EQ(Get("/api/v1/workers", "", token).status, 200) << token;
  }
  // An unknown token learns nothing about ids.
  ExpectError(Get("/api/v1/jobs/job-999", "", ""), 401, "");

  ExpectError(Call("POST", "/api/v1/jobs/" + sams + "/cancel", "", "viewer-token"), 403, "");
  ExpectError(Call("POST", "/api/v1/jobs/" + sams + "/cancel", "", "sue-token"), 403, "");
  ExpectError(Call("POST", "/api/v1/jobs/" + sams + "/cancel", "", "worker-token"), 403, "");
  ExpectError(Call("POST", "/api/v1/jobs/" + sams + "/cancel", "", ""), 401, "");
  EXPECT_EQ(State(sams), dino::v1::JOB_STATE_QUEUED);

  HttpResponse own = Call("POST", "/api/v1/jobs/" + sams + "/cancel", "", "sam-token");
  ASSERT_EQ(own.status, 200) << own.body;
  EXPECT_EQ(Parse<dino::v1::Job>(own).state(), dino::v1::JOB_STATE_CANCELLED);
  HttpResponse admin = Call("POST", "/api/v1/jobs/" + sues + "/cancel", "", "admin-token",
                            R"({"reason": "disk full"})");
  ASSERT_EQ(admin.status, 200) << admin.body;
  EXPECT_EQ(State(sues), dino::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(absl::StrContains(coordinator_->GetJob(sues)->message(), "disk full"));
}

TEST_F(HttpApiTest, WithoutTokensAuthIsOff) {
  HttpApi open(coordinator_.get(), nullptr);
  const std::string job = SubmitAs("anonymous");
  HttpRequest request;
  request.method = "POST";
  request.path = "/api/v1/jobs/" + job + "/cancel";
  EXPECT_EQ(open.Handle(request).status, 200);
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_CANCELLED);
}

TEST_F(HttpApiTest, CancelBodiesAreBoundedAndChecked) {
  const std::string job = SubmitAs("sam");
  const std::string path = "/api/v1/jobs/" + job + "/cancel";
  ExpectError(Call("POST", path, "", "admin-token", "{not json"), 400, "body");
  ExpectError(Call("POST", path, "", "admin-token", R"({"colour": "red"})"), 400, "body");
  ExpectError(Call("POST", path, "", "admin-token", R"({"jobId": "job-12345"})"), 400, "job_id");
  ExpectError(Call("POST", path, "", "admin-token",
                   absl::StrCat(R"({"reason": ")", std::string(2000, 'r'), "\"}")),
              400, "reason");
  ExpectError(Call("POST", path, "", "admin-token", std::string(5000, ' ')), 413, "body");
  ExpectError(Call("GET", "/api/v1/jobs", "", "admin-token", "x"), 400, "body");
  EXPECT_EQ(State(job), dino::v1::JOB_STATE_QUEUED);
}

TEST_F(HttpApiTest, EventsArePagedAfterAnIndex) {
  const std::string job = SubmitAs("sam");
  ASSERT_TRUE(coordinator_->CancelJob(job, "stop").ok());
  const int64_t last = coordinator_->GetJob(job)->last_event_index();
  ASSERT_GE(last, 2);
  HttpResponse all = Get("/api/v1/jobs/" + job + "/events");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_TRUE(absl::StrContains(all.body, absl::StrCat("\"nextAfterIndex\":\"", last, "\"")))
      << all.body;
  EXPECT_TRUE(absl::StrContains(all.body, "\"more\":false")) << all.body;
  EXPECT_TRUE(absl::StrContains(all.body, "JOB_STATE_CANCELLED")) << all.body;

  HttpResponse page = Get("/api/v1/jobs/" + job + "/events", "limit=1");
  EXPECT_TRUE(absl::StrContains(page.body, "\"nextAfterIndex\":\"1\"")) << page.body;
  EXPECT_TRUE(absl::StrContains(page.body, "\"more\":true")) << page.body;
  HttpResponse rest = Get("/api/v1/jobs/" + job + "/events", absl::StrCat("after_index=", last));
  EXPECT_TRUE(absl::StrContains(rest.body, "\"events\":[]")) << rest.body;
}

TEST_F(HttpApiTest, MetricsCheckpointsDownloadAndWorkers) {
  TestWorker w = AddWorker();
  const std::string job = SubmitAs("sam");
  ASSERT_EQ(State(job), dino::v1::JOB_STATE_RUNNING);
  dino::v1::ReportProgressRequest progress = ProgressFrom(w, job);
  for (int step = 0; step < 3; ++step) {
    dino::v1::StepStats* stats = progress.add_stats();
    stats->set_step(step);
    stats->set_total_steps(10);
    stats->set_loss(5.0 - step);
    stats->set_teacher_entropy(1.5);
  }
  ASSERT_TRUE(coordinator_->ReportProgress(progress).ok());
  HttpResponse metrics = Get("/api/v1/jobs/" + job + "/metrics", "series=loss");
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  auto series = Parse<dino::v1::GetJobMetricsResponse>(metrics);
  ASSERT_EQ(series.series_size(), 1);
  EXPECT_EQ(series.series(0).name(), "loss");
  EXPECT_EQ(series.series(0).points_size(), 3);

  const std::string data(3 << 20, 'c');  // Over one download chunk.
  auto checkpoint = UploadCheckpoint(job, 1, w, 3, data);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  auto list = Parse<dino::v1::ListCheckpointsResponse>(Get("/api/v1/jobs/" + job + "/checkpoints"));
  ASSERT_EQ(list.checkpoints_size(), 1);
  EXPECT_EQ(list.checkpoints(0).size_bytes(), static_cast<int64_t>(data.size()));

  HttpResponse download =
      Get("/api/v1/jobs/" + job + "/checkpoints/" + checkpoint->id() + "/download");
  ASSERT_EQ(download.status, 200) << download.body;
  EXPECT_EQ(download.content_type, "application/octet-stream");
  EXPECT_EQ(Header(download, "X-Checkpoint-Sha256"), Sha256::Of(data));
  EXPECT_TRUE(absl::StrContains(Header(download, "Content-Disposition"), "attachment"));
  ASSERT_NE(download.blob, nullptr);
  std::string got;
  while (!download.blob->done()) {
    auto chunk = download.blob->Next(1 << 20);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    got += *chunk;
  }
  EXPECT_EQ(got, data);

  auto workers = Parse<dino::v1::ListWorkersResponse>(Get("/api/v1/workers"));
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_EQ(workers.workers(0).id(), w.id);
}

TEST_F(HttpApiTest, EventStreamResumesFromLastEventIdAndEndsWithTheJob) {
  const std::string job = SubmitAs("sam");
  ASSERT_TRUE(coordinator_->CancelJob(job, "stop").ok());
  HttpRequest request;
  request.method = "GET";
  request.path = "/api/v1/jobs/" + job + "/events/stream";
  request.headers["authorization"] = "Bearer viewer-token";
  request.headers["last-event-id"] = "1";
  HttpResponse response = api_->Handle(request);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.content_type, "text/event-stream");
  ASSERT_TRUE(response.event_stream.has_value());
  EXPECT_EQ(response.event_stream->after_index, 1);
  EXPECT_EQ(response.event_stream->client, "vera");
  request.headers["last-event-id"] = "x";
  ExpectError(api_->Handle(request), 400, "Last-Event-ID");

  std::string out;
  absl::Status ended = StreamJobEvents(
      coordinator_.get(), *response.event_stream, EventStreamOptions(),
      [&](absl::string_view data) {
        out.append(data.data(), data.size());
        return true;
      },
      [] { return false; });
  EXPECT_TRUE(ended.ok()) << ended;
  EXPECT_FALSE(absl::StrContains(out, "id: 1\n")) << out;
  EXPECT_TRUE(absl::StrContains(out, "id: 2\nevent: state_change\ndata: {")) << out;
  EXPECT_TRUE(absl::StrContains(out, "event: end\ndata: {")) << out;
  EXPECT_TRUE(absl::StrContains(out, "JOB_STATE_CANCELLED")) << out;
}

TEST_F(HttpApiTest, EventStreamReplaysAtMostTheLagBoundThenAsksToResume) {
  TestWorker w = AddWorker();
  const std::string job = SubmitAs("sam");
  for (int step = 0; step < 5; ++step) {
    dino::v1::ReportProgressRequest progress = ProgressFrom(w, job);
    progress.add_stats()->set_step(step);
    ASSERT_TRUE(coordinator_->ReportProgress(progress).ok());
  }
  EventStreamStart start;
  start.job_id = job;
  EventStreamOptions options;
  options.max_lag_events = 2;
  std::string out;
  int writes = 0;
  absl::Status ended = StreamJobEvents(
      coordinator_.get(), start, options,
      [&](absl::string_view data) {
        out.append(data.data(), data.size());
        ++writes;
        return true;
      },
      [] { return false; });
  EXPECT_TRUE(ended.ok()) << ended;
  EXPECT_TRUE(absl::StrContains(out, "id: 2\n")) << out;
  EXPECT_FALSE(absl::StrContains(out, "id: 3\n")) << out;
  EXPECT_TRUE(absl::StrContains(out, "event: resume")) << out;

  // A client that went away ends the stream and its watch.
  absl::Status gone = StreamJobEvents(
      coordinator_.get(), start, EventStreamOptions(), [](absl::string_view) { return false; },
      [] { return false; });
  EXPECT_EQ(gone.code(), absl::StatusCode::kCancelled) << gone;
}

}  // namespace
}  // namespace dino::server
