// Metrics end to end: a real dino-coordinator and dino-worker serving /metrics while a tiny job
// trains. Their scraped output must pass `promtool check metrics`, must expose every metric that
// deploy/METRICS.md lists for them and every metric the Grafana dashboard and the alert rules
// query (tests/deploy/check_dashboard_metrics.py --exposition), and a real Prometheus (Debian's
// /usr/bin/prometheus on loopback, scraping both every second) must see non-zero
// dino_train_images_total and grpc_server_handled_total through its HTTP API. When the job ends,
// the worker stops exporting its job-labelled series.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "worker/dist/free_port.h"

namespace dino::e2e {
namespace {

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";

// GET http://127.0.0.1:port/path (HTTP/1.0, so the server closes after the body). Returns the body
// of a 200 answer.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to port ", port));
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("short write");
  }
  std::string response;
  char buffer[65536];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.") || body == std::string::npos ||
      response.substr(9, 3) != "200") {
    return absl::UnavailableError(absl::StrCat("GET ", path, ": ", response.substr(0, 200)));
  }
  return response.substr(body + 4);
}

// The value of the first sample whose line starts with `prefix` (name and a label prefix).
double FirstSample(const std::string& exposition, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
  }
  return -1;
}

// Runs `command` through the shell; returns its exit code and its output (stdout and stderr).
int RunShell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output->append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The value of an instant PromQL query with a single result, or -1 when it has none (yet).
double PrometheusValue(int port, const std::string& query) {
  std::string encoded;
  for (char c : query) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      encoded += c;
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", static_cast<unsigned char>(c));
      encoded += hex;
    }
  }
  absl::StatusOr<std::string> body = HttpGet(port, "/api/v1/query?query=" + encoded);
  if (!body.ok()) return -1;
  std::smatch match;
  static const std::regex kValue(R"re("value":\[[^,\]]+,"([^"]+)"\])re");
  double value = -1;
  if (std::regex_search(*body, match, kValue) && absl::SimpleAtod(match[1].str(), &value)) {
    return value;
  }
  return -1;
}

TEST(MetricsE2eTest, RealRunIsScrapedCheckedAndSeenByPrometheus) {
  if (access(kPrometheus, X_OK) != 0 || access(kPromtool, X_OK) != 0) {
    GTEST_SKIP() << "needs Debian's prometheus and promtool (apt-get install prometheus)";
  }
  const char* root_env = std::getenv("DINO_SOURCE_ROOT");
  ASSERT_NE(root_env, nullptr) << "DINO_SOURCE_ROOT is set by dino_test";
  const std::string root = root_env;

  Cluster cluster("metrics");
  cluster.EnableMetrics();
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  const int coordinator_port = cluster.coordinator_metrics_port();
  const int worker_port = cluster.worker_metrics_port(0);

  // Prometheus first, so that it is up and scraping by the time the job trains.
  const int prometheus_port = dist::PickFreeTcpPort().value();
  const std::string config = cluster.dir() + "/prometheus.yml";
  WriteFile(config, absl::StrCat("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n",
                                 "scrape_configs:\n",
                                 "  - job_name: dino-coordinator\n    static_configs:\n",
                                 "      - targets: ['127.0.0.1:", coordinator_port, "']\n",
                                 "  - job_name: dino-worker\n    static_configs:\n",
                                 "      - targets: ['127.0.0.1:", worker_port, "']\n"));
  const std::string prometheus_log = cluster.dir() + "/prometheus.log";
  Process prometheus("prometheus",
                     {kPrometheus, "--config.file=" + config,
                      "--storage.tsdb.path=" + cluster.dir() + "/prometheus-data",
                      absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port)},
                     prometheus_log);
  auto logs = [&] {
    std::ifstream in(prometheus_log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return absl::StrCat(cluster.Logs(), "==== ", prometheus_log, " ====\n", text);
  };

  // Long enough to be cancelled while training; checkpoints every 4 steps.
  absl::StatusOr<dino::v1::Job> job = cluster.Submit(TinySpec(1, 200));
  ASSERT_TRUE(job.ok()) << job.status() << logs();
  const std::string job_label = absl::StrCat("{job=\"", job->id(), "\",rank=\"0\"}");

  // Scrape both binaries once the worker has trained and uploaded a checkpoint.
  std::string worker_text, coordinator_text;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> w = HttpGet(worker_port, "/metrics");
    if (w.ok() && FirstSample(*w, "dino_train_step" + job_label) >= 1 &&
        FirstSample(*w, "dino_checkpoint_upload_seconds_count" + job_label) >= 1) {
      worker_text = *w;
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_FALSE(worker_text.empty()) << "the worker never reported a step and an upload\n" << logs();
  absl::StatusOr<std::string> c = HttpGet(coordinator_port, "/metrics");
  ASSERT_TRUE(c.ok()) << c.status();
  coordinator_text = *c;
  EXPECT_GT(FirstSample(worker_text, "dino_train_images_total" + job_label), 0);
  EXPECT_EQ(FirstSample(worker_text, "dino_worker_assignment_info" + job_label), 1);
  EXPECT_GT(FirstSample(worker_text, "process_resident_memory_bytes"), 0);
  EXPECT_GT(FirstSample(coordinator_text, "grpc_server_handled_total{"), 0);
  EXPECT_GT(FirstSample(coordinator_text, "dino_sqlite_write_seconds_count"), 0);
  EXPECT_GE(FirstSample(coordinator_text, "dino_jobs{state=\"RUNNING\"}"), 1);

  const std::string worker_file = cluster.dir() + "/worker.metrics";
  const std::string coordinator_file = cluster.dir() + "/coordinator.metrics";
  WriteFile(worker_file, worker_text);
  WriteFile(coordinator_file, coordinator_text);
  for (const std::string& file : {coordinator_file, worker_file}) {
    std::string out;
    EXPECT_EQ(RunShell(absl::StrCat(kPromtool, " check metrics < ", file), &out), 0)
        << file << ":\n"
        << out;
  }
  {
    std::string out;
    const std::string command = absl::StrCat(
        "/usr/bin/python3 ", root, "/tests/deploy/check_dashboard_metrics.py ", root,
        "/deploy/METRICS.md ", root, "/deploy/grafana/dashboards/dinotrain.json ", root,
        "/deploy/prometheus/alerts.yml --exposition ", coordinator_file, " ", worker_file);
    EXPECT_EQ(RunShell(command, &out), 0) << out;
  }

  // Prometheus sees both binaries' series through its HTTP API.
  double images = -1, handled = -1;
  const absl::Time query_deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < query_deadline) {
    images = PrometheusValue(prometheus_port, "sum(dino_train_images_total)");
    handled = PrometheusValue(prometheus_port, "sum(grpc_server_handled_total)");
    if (images > 0 && handled > 0) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_GT(images, 0) << logs();
  EXPECT_GT(handled, 0) << logs();
  EXPECT_EQ(PrometheusValue(prometheus_port, "sum(up)"), 2) << logs();

  // Cancel: the assignment ends and its series are no longer exported.
  {
    grpc::ClientContext context;
    dino::v1::CancelJobRequest request;
    request.set_job_id(job->id());
    dino::v1::Job cancelled;
    ASSERT_TRUE(cluster.jobs()->CancelJob(&context, request, &cancelled).ok());
  }
  ASSERT_TRUE(cluster.WaitTerminal(job->id(), absl::Seconds(30)).ok()) << logs();
  bool removed = false;
  const absl::Time removal_deadline = absl::Now() + absl::Seconds(15);
  while (!removed && absl::Now() < removal_deadline) {
    absl::StatusOr<std::string> w = HttpGet(worker_port, "/metrics");
    removed = w.ok() && !absl::StrContains(*w, job->id()) &&
              absl::StrContains(*w, "# TYPE dino_train_images_total counter");
    if (!removed) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(removed) << "the worker still exports series of " << job->id();
}

}  // namespace
}  // namespace dino::e2e
