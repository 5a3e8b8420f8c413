#include "common/metrics_http.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics_exposition.h"

namespace dino {
namespace metrics {
namespace {

using ::testing::HasSubstr;

struct HttpResponse {
  int code = 0;
  std::string headers;
  std::string body;
};

// A raw HTTP/1.0 exchange over loopback, so that the test needs no HTTP client library.
HttpResponse Fetch(int port, const std::string& method, const std::string& path) {
  HttpResponse response;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return response;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return response;
  }
  const std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return response;
  }
  std::string raw;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) raw.append(buffer, n);
  close(fd);
  const size_t header_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 7, "HTTP/1.") != 0 || header_end == std::string::npos) return response;
  response.code = std::stoi(raw.substr(9, 3));
  response.headers = raw.substr(0, header_end);
  response.body = raw.substr(header_end + 4);
  return response;
}

// Holds a listening socket on a free loopback port.
class PortHolder {
 public:
  PortHolder() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        listen(fd_, 1) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  ~PortHolder() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Family<Counter>* heartbeats = *registry_.AddCounter("dino_heartbeats_total", "Heartbeats.");
    heartbeats->Get()->Increment(7);
    Family<Gauge>* workers = *registry_.AddGauge("dino_workers", "Workers.", {"state"});
    workers->WithLabels({"IDLE"})->Set(2);
  }
  Registry registry_;
};

TEST_F(MetricsHttpServerTest, ServesMetricsOnEphemeralPort) {
  MetricsHttpServer server(&registry_);
  EXPECT_EQ(server.port(), 0);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  ASSERT_GT(server.port(), 0);

  HttpResponse response = Fetch(server.port(), "GET", "/metrics");
  EXPECT_EQ(response.code, 200);
  EXPECT_THAT(response.headers,
              HasSubstr(absl::StrCat("Content-Type: ", kExpositionContentType, "\r\n")));
  EXPECT_THAT(response.headers,
              HasSubstr(absl::StrCat("Content-Length: ", response.body.size(), "\r\n")));
  EXPECT_EQ(response.body, registry_.Render());

  // The body is rendered per request: later updates show up.
  (*registry_.AddGauge("dino_queue_length", "Queue."))->Get()->Set(3);
  EXPECT_THAT(Fetch(server.port(), "GET", "/metrics").body, HasSubstr("dino_queue_length 3\n"));
  server.Stop();
}

TEST_F(MetricsHttpServerTest, RejectsOtherPathsAndMethods) {
  MetricsHttpServer server(&registry_);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  EXPECT_EQ(Fetch(server.port(), "GET", "/").code, 404);
  EXPECT_EQ(Fetch(server.port(), "GET", "/metricsx").code, 404);
  HttpResponse post = Fetch(server.port(), "POST", "/metrics");
  EXPECT_EQ(post.code, 405);
  EXPECT_THAT(post.headers, HasSubstr("Allow: GET, HEAD"));
  HttpResponse head = Fetch(server.port(), "HEAD", "/metrics");
  EXPECT_EQ(head.code, 200);
  EXPECT_EQ(head.body, "");
}

TEST_F(MetricsHttpServerTest, ServesConcurrentScrapes) {
  MetricsHttpServer server(&registry_);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  const std::string expected = registry_.Render();
  std::vector<std::thread> clients;
  std::vector<int> ok(6, 0);
  for (size_t c = 0; c < ok.size(); ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 10; ++i) {
        HttpResponse response = Fetch(server.port(), "GET", "/metrics");
        ok[c] += response.code == 200 && response.body == expected;
      }
    });
  }
  for (std::thread& client : clients) client.join();
  for (int count : ok) EXPECT_EQ(count, 10);
}

TEST_F(MetricsHttpServerTest, PortInUseIsAnErrorNamingThePort) {
  PortHolder holder;
  ASSERT_GT(holder.port(), 0);
  MetricsHttpServer server(&registry_);
  absl::Status status = server.Start("127.0.0.1", holder.port());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.message()), HasSubstr(absl::StrCat("127.0.0.1:", holder.port())));
  EXPECT_EQ(server.port(), 0);
  EXPECT_EQ(server.Start("127.0.0.1", 70000).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MetricsHttpServerTest, StopReleasesThePortAndRestarts) {
  MetricsHttpServer server(&registry_);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  const int port = server.port();
  EXPECT_EQ(server.Start("127.0.0.1", 0).code(), absl::StatusCode::kFailedPrecondition);
  server.Stop();
  EXPECT_EQ(server.port(), 0);
  EXPECT_EQ(Fetch(port, "GET", "/metrics").code, 0);  // connection refused
  server.Stop();                                      // idempotent
  ASSERT_TRUE(server.Start("127.0.0.1", port).ok()) << "port not released";
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(Fetch(port, "GET", "/metrics").code, 200);
}

}  // namespace
}  // namespace metrics
}  // namespace dino
