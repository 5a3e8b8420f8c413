// HttpServer over loopback: the transport glue's headers, streaming, console files, HTTPS with the
// test certificates and the listen-address rule. The handlers themselves are tested in
// http_api_test.cc.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/server/coordinator_fixture.h"
#include "tests/server/test_certs.h"

namespace dino::server {
namespace {

using testing::CoordinatorFixture;

// A connection to 127.0.0.1:port that has sent `request`; -1 when it cannot connect.
int Send(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = write(fd, request.data() + sent, request.size() - sent);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  return fd;
}

// One request on a fresh connection; the whole response (the server closes after it).
std::string Fetch(int port, const std::string& request) {
  const int fd = Send(port, request);
  if (fd < 0) return "";
  std::string response;
  char buffer[65536];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  return response;
}

std::string Get(int port, const std::string& path, const std::string& token = "admin-token") {
  return Fetch(
      port, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n",
                         token.empty() ? "" : "Authorization: Bearer " + token + "\r\n", "\r\n"));
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
                                                          bool insecure = false, bool tls = false) {
    HttpServerOptions options;
    options.listen = listen;
    options.insecure = insecure;
    if (tls) {
      options.tls_cert_file = dir_ + "/server.pem";
      options.tls_key_file = dir_ + "/server.key";
    }
    options.console_dir = console_dir_;
    options.chart_js_path = dir_ + "/secret.js";  // Any file: served only as vendor/chart.js.
    return HttpServer::Start(options, coordinator_.get(), tokens_.get());
  }

  // A job that ended (cancelled) after committing one checkpoint of `data`: its event stream
  // ends, and the checkpoint downloads.
  void EndedJobWithCheckpoint(const std::string& data, std::string* job,
                              dino::v1::CheckpointInfo* checkpoint) {
    TestWorker w = AddWorker();
    *job = Submit(testing::TinySpec());
    auto committed = UploadCheckpoint(*job, 1, w, 1, data);
    ASSERT_TRUE(committed.ok()) << committed.status();
    *checkpoint = *committed;
    ASSERT_TRUE(coordinator_->CancelJob(*job, "enough").ok());
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
  auto second = StartServer(absl::StrCat("127.0.0.1:", port));  // The port is taken.
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
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
  // A chunked body has no Content-Length to refuse up front: it is cut off at the bound.
  const std::string chunked = Fetch(
      port, absl::StrCat("POST /api/v1/jobs/job-1/cancel HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: Bearer admin-token\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "1001\r\n",
                         std::string(0x1001, '{'), "\r\n0\r\n\r\n"));
  EXPECT_TRUE(absl::StartsWith(chunked, "HTTP/1.1 413 ")) << chunked;
  // Without Content-Length or Transfer-Encoding a request has no body to wait for.
  const std::string empty = Fetch(port,
                                  "POST /api/v1/jobs/job-1/cancel HTTP/1.1\r\nHost: x\r\n"
                                  "Authorization: Bearer admin-token\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(empty, "HTTP/1.1 200 ")) << empty;
}

TEST_F(HttpServerTest, StreamsEventsAndDownloads) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string data(1500000, 'd');
  std::string job;
  dino::v1::CheckpointInfo checkpoint;
  ASSERT_NO_FATAL_FAILURE(EndedJobWithCheckpoint(data, &job, &checkpoint));

  const std::string stream = Get((*server)->port(), "/api/v1/jobs/" + job + "/events/stream");
  EXPECT_TRUE(absl::StartsWith(stream, "HTTP/1.1 200 OK\r\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "Content-Type: text/event-stream\r\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "id: 1\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "event: checkpoint\n")) << stream;
  EXPECT_TRUE(absl::StrContains(stream, "event: end\n")) << stream;

  const std::string download = Get(
      (*server)->port(), "/api/v1/jobs/" + job + "/checkpoints/" + checkpoint.id() + "/download");
  EXPECT_TRUE(absl::StartsWith(download, "HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(absl::StrContains(download, absl::StrCat("Content-Length: ", data.size(), "\r\n")));
  const size_t body = download.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(download.substr(body + 4), data);
}

TEST_F(HttpServerTest, EventStreamsAreSentAsTheyHappenAndEndSoonAfterStop) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  AddWorker();
  const std::string job = Submit(testing::TinySpec());  // Running: its stream stays open.
  const int fd =
      Send((*server)->port(), absl::StrCat("GET /api/v1/jobs/", job,
                                           "/events/stream HTTP/1.1\r\n"
                                           "Host: x\r\nAuthorization: Bearer admin-token\r\n\r\n"));
  ASSERT_GE(fd, 0);
  const timeval timeout{10, 0};  // A stream that was not flushed fails here, not by hanging.
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string response;
  char buffer[4096];
  ssize_t n = 0;
  while (!absl::StrContains(response, "event: state_change\n") &&
         (n = read(fd, buffer, sizeof(buffer))) > 0) {
    response.append(buffer, n);
  }
  EXPECT_TRUE(absl::StrContains(response, "Transfer-Encoding: chunked\r\n")) << response;
  EXPECT_TRUE(absl::StrContains(response, "event: state_change\n")) << response;

  const absl::Time stop = absl::Now();
  (*server)->Stop();
  EXPECT_LT(absl::Now() - stop, absl::Seconds(3));
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  EXPECT_EQ(n, 0) << "the stream did not end";
  EXPECT_TRUE(absl::EndsWith(response, "0\r\n\r\n")) << response;
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
  for (const char* path :
       {"/console/../secret.js", "/console/%2e%2e/secret.js", "/console/vendor/../../secret.js",
        "/console/.hidden.js", "/console/index.txt", "/elsewhere"}) {
    const std::string response = Get(port, path, "");
    EXPECT_FALSE(absl::StrContains(response, "secret\n") || absl::EndsWith(response, "secret"))
        << path << ": " << response;
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

// The certificates of tests/server/test_certs.h, made in the test's directory.
class HttpsServerTest : public HttpServerTest {
 protected:
  void SetUp() override {
    HttpServerTest::SetUp();
    std::string log;
    ASSERT_TRUE(testing::MakeTestCertificates(dir_, &log)) << log;
  }

  std::unique_ptr<httplib::SSLClient> Client(int port, const std::string& ca = "ca.pem") {
    auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    client->set_ca_cert_path((dir_ + "/" + ca).c_str());
    client->enable_server_certificate_verification(true);
    client->set_connection_timeout(5);
    client->set_read_timeout(10);
    return client;
  }
};

TEST_F(HttpsServerTest, ServesTheApiOverHttpsOnly) {
  auto server = StartServer("127.0.0.1:0", /*insecure=*/false, /*tls=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  EXPECT_EQ((*server)->url(), absl::StrCat("https://127.0.0.1:", port));
  Submit(testing::TinySpec());

  auto client = Client(port);
  const httplib::Headers token = {{"Authorization", "Bearer admin-token"}};
  httplib::Result jobs = client->Get("/api/v1/jobs", token);
  ASSERT_TRUE(jobs) << httplib::to_string(jobs.error());
  EXPECT_EQ(jobs->status, 200) << jobs->body;
  EXPECT_EQ(jobs->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(jobs->get_header_value("Content-Security-Policy"), kContentSecurityPolicy);
  EXPECT_TRUE(absl::StrContains(jobs->body, "JOB_STATE_QUEUED")) << jobs->body;
  httplib::Result denied = client->Get("/api/v1/jobs");
  ASSERT_TRUE(denied) << httplib::to_string(denied.error());
  EXPECT_EQ(denied->status, 401);

  // A client that does not trust the CA, and a plaintext request, get no HTTP answer.
  httplib::Result untrusted = Client(port, "other.pem")->Get("/api/v1/jobs", token);
  EXPECT_FALSE(untrusted);
  const std::string plaintext = Get(port, "/api/v1/jobs");
  EXPECT_FALSE(absl::StrContains(plaintext, "HTTP/1.1")) << plaintext;
  EXPECT_FALSE(absl::StrContains(plaintext, "JOB_STATE")) << plaintext;
}

TEST_F(HttpsServerTest, StreamsEventsAndDownloadsOverHttps) {
  auto server = StartServer("127.0.0.1:0", /*insecure=*/false, /*tls=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string data(1500000, 'd');
  std::string job;
  dino::v1::CheckpointInfo checkpoint;
  ASSERT_NO_FATAL_FAILURE(EndedJobWithCheckpoint(data, &job, &checkpoint));

  auto client = Client((*server)->port());
  const httplib::Headers token = {{"Authorization", "Bearer admin-token"}};
  httplib::Result stream = client->Get("/api/v1/jobs/" + job + "/events/stream", token);
  ASSERT_TRUE(stream) << httplib::to_string(stream.error());
  EXPECT_EQ(stream->status, 200);
  EXPECT_EQ(stream->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_TRUE(absl::StrContains(stream->body, "event: checkpoint\n")) << stream->body;
  EXPECT_TRUE(absl::StrContains(stream->body, "event: end\n")) << stream->body;

  httplib::Result download =
      client->Get("/api/v1/jobs/" + job + "/checkpoints/" + checkpoint.id() + "/download", token);
  ASSERT_TRUE(download) << httplib::to_string(download.error());
  EXPECT_EQ(download->status, 200);
  EXPECT_EQ(download->get_header_value("Content-Length"), std::to_string(data.size()));
  EXPECT_EQ(download->body, data);
}

TEST_F(HttpsServerTest, TlsServesAnyAddressWithoutInsecure) {
  auto https = StartServer("0.0.0.0:0", /*insecure=*/false, /*tls=*/true);
  ASSERT_TRUE(https.ok()) << https.status();
  EXPECT_TRUE(absl::StartsWith((*https)->url(), "https://0.0.0.0:")) << (*https)->url();
  auto plaintext = StartServer("0.0.0.0:0", /*insecure=*/false, /*tls=*/false);
  ASSERT_FALSE(plaintext.ok());
  EXPECT_EQ(plaintext.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(plaintext.status().message(), "--tls-cert")) << plaintext.status();

  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.tls_cert_file = dir_ + "/server.pem";
  auto no_key = HttpServer::Start(options, coordinator_.get(), tokens_.get());
  EXPECT_EQ(no_key.status().code(), absl::StatusCode::kInvalidArgument) << no_key.status();
  options.tls_key_file = dir_ + "/other.key";  // Not the certificate's key.
  auto wrong_key = HttpServer::Start(options, coordinator_.get(), tokens_.get());
  EXPECT_EQ(wrong_key.status().code(), absl::StatusCode::kFailedPrecondition) << wrong_key.status();
}

}  // namespace
}  // namespace dino::server
