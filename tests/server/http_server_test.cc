// HttpServer over loopback: the civetweb glue's headers, streaming, console files and the
// listen-address rule. The handlers themselves are tested in http_api_test.cc.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator_fixture.h"

namespace dino::server {
namespace {

using testing::CoordinatorFixture;

// One request on a fresh connection; the whole response (the server closes after it).
std::string Fetch(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "";
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = write(fd, request.data() + sent, request.size() - sent);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[65536];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  return response;
}

std::string Get(int port, const std::string& path, const std::string& token = "admin-token") {
  return Fetch(port, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n",
                                  token.empty() ? "" : "Authorization: Bearer " + token + "\r\n",
                                  "\r\n"));
}

class HttpServerTest : public CoordinatorFixture {
 protected:
  void SetUp() override {
    CoordinatorFixture::SetUp();
    auto tokens = TokenTable::Parse(absl::StrCat(Sha256::Of("admin-token"), " ada admin\n"), "t");
    ASSERT_TRUE(tokens.ok());
    tokens_ = std::make_unique<TokenTable>(*std::move(tokens));
    console_dir_ = dir_ + "/console";
    ASSERT_EQ(mkdir(console_dir_.c_str(), 0755), 0);
    std::ofstream(console_dir_ + "/index.html") << "<!doctype html><title>console</title>";
    std::ofstream(dir_ + "/secret.js") << "secret";
  }

  absl::StatusOr<std::unique_ptr<HttpServer>> StartServer(const std::string& listen,
                                                          bool insecure = false) {
    HttpServerOptions options;
    options.listen = listen;
    options.insecure = insecure;
    options.console_dir = console_dir_;
    options.chart_js_path = dir_ + "/secret.js";  // Any file: served only as vendor/chart.js.
    return HttpServer::Start(options, coordinator_.get(), tokens_.get());
  }

  std::unique_ptr<TokenTable> tokens_;
  std::string console_dir_;
};

TEST_F(HttpServerTest, ServesTheApiWithSecurityHeaders) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  EXPECT_EQ((*server)->url(), absl::StrCat("http://127.0.0.1:", port));
  Submit(testing::TinySpec());

  const std::string jobs = Get(port, "/api/v1/jobs?state=QUEUED");
  EXPECT_TRUE(absl::StartsWith(jobs, "HTTP/1.1 200 OK\r\n")) << jobs;
  EXPECT_TRUE(absl::StrContains(jobs, "Content-Type: application/json\r\n")) << jobs;
  EXPECT_TRUE(absl::StrContains(jobs, "X-Content-Type-Options: nosniff\r\n")) << jobs;
  EXPECT_TRUE(absl::StrContains(
      jobs, absl::StrCat("Content-Security-Policy: ", kContentSecurityPolicy, "\r\n")))
      << jobs;
  EXPECT_TRUE(absl::StrContains(jobs, "JOB_STATE_QUEUED")) << jobs;

  const std::string denied = Get(port, "/api/v1/jobs", "");
  EXPECT_TRUE(absl::StartsWith(denied, "HTTP/1.1 401 ")) << denied;
  EXPECT_TRUE(absl::StrContains(denied, "WWW-Authenticate: Bearer\r\n")) << denied;

  const std::string big = Fetch(
      port, absl::StrCat("POST /api/v1/jobs/job-1/cancel HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: Bearer admin-token\r\nContent-Length: 100000\r\n\r\n",
                         std::string(100000, '{')));
  EXPECT_TRUE(absl::StartsWith(big, "HTTP/1.1 413 ")) << big;
}

TEST_F(HttpServerTest, StreamsEventsAndDownloads) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  TestWorker w = AddWorker();
  const std::string job = Submit(testing::TinySpec());
  const std::string data(1500000, 'd');
  auto checkpoint = UploadCheckpoint(job, 1, w, 1, data);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  ASSERT_TRUE(coordinator_->CancelJob(job, "enough").ok());

  const std::string stream = Get((*server)->port(), "/api/v1/jobs/" + job + "/events/stream");
  EXPECT_TRUE(absl::StartsWith(stream, "HTTP/1.1 200 OK\r\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "Content-Type: text/event-stream\r\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "id: 1\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "event: checkpoint\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "event: end\n")) << stream;

  const std::string download = Get(
      (*server)->port(), "/api/v1/jobs/" + job + "/checkpoints/" + checkpoint->id() + "/download");
  EXPECT_TRUE(absl::StartsWith(download, "HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(absl::StrContains(download, absl::StrCat("Content-Length: ", data.size(), "\r\n")));
  const size_t body = download.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(download.substr(body + 4), data);
}

TEST_F(HttpServerTest, ServesOnlyTheConsoleFiles) {
  auto server = StartServer("0");  // A port alone listens on loopback.
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const std::string index = Get(port, "/console/", "");
  EXPECT_TRUE(absl::StartsWith(index, "HTTP/1.1 200 OK\r\n")) << index;
  EXPECT_TRUE(absl::StrContains(index, "Content-Type: text/html; charset=utf-8\r\n")) << index;
  EXPECT_TRUE(absl::StrContains(index, "<title>console</title>")) << index;
  EXPECT_TRUE(absl::StrContains(index, "script-src 'self'")) << index;
  EXPECT_TRUE(absl::StartsWith(Get(port, "/", ""), "HTTP/1.1 302 ")) << Get(port, "/", "");
  EXPECT_TRUE(absl::StrContains(Get(port, "/console/vendor/chart.js", ""), "secret"));
  for (const char* path : {"/console/../secret.js", "/console/%2e%2e/secret.js",
                           "/console/vendor/../../secret.js", "/console/.hidden.js",
                           "/console/index.txt", "/elsewhere"}) {
    const std::string response = Get(port, path, "");
    EXPECT_FALSE(absl::StrContains(response, "secret\n") ||
                 absl::EndsWith(response, "secret")) << path << ": " << response;
    EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 404 ")) << path << ": " << response;
  }
  const std::string post = Fetch(port, "POST /console/ HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(post, "HTTP/1.1 405 ")) << post;
}

TEST_F(HttpServerTest, NonLoopbackNeedsInsecure) {
  auto refused = StartServer("0.0.0.0:0");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "--insecure")) << refused.status();
  EXPECT_FALSE(StartServer("[::1]:0").ok());
  EXPECT_FALSE(StartServer("127.0.0.1:http").ok());
  auto insecure = StartServer("0.0.0.0:0", /*insecure=*/true);
  EXPECT_TRUE(insecure.ok()) << insecure.status();
}

}  // namespace
}  // namespace dino::server
