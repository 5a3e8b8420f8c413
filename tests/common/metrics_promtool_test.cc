// Feeds a registry with every metric type and awkward label values to `promtool check metrics`,
// the Prometheus project's own parser and linter for the exposition format.
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/metrics.h"
#include "common/metrics_process.h"

namespace dino {
namespace metrics {
namespace {

constexpr char kPromtool[] = "/usr/bin/promtool";

struct CheckResult {
  int exit_code = -1;
  std::string output;
};

// Pipes `text` into `promtool check metrics`; its stdout and stderr are captured together.
CheckResult PromtoolCheckMetrics(const std::string& text) {
  CheckResult result;
  char path[] = "/tmp/dino_metrics_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return result;
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (written) {
    const std::string command = std::string(kPromtool) + " check metrics < " + path + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe != nullptr) {
      char buffer[512];
      size_t n;
      while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
      const int status = pclose(pipe);
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
  }
  unlink(path);
  return result;
}

class MetricsPromtoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " is not installed";
  }
};

TEST_F(MetricsPromtoolTest, AcceptsEveryTypeWithEscapedLabels) {
  Registry registry;
  Family<Counter>* handled = *registry.AddCounter(
      "grpc_server_handled_total", "RPCs completed on the server, \\ by code.\nSecond line.",
      {"grpc_service", "grpc_method", "grpc_code"});
  handled->WithLabels({"dino.v1.JobService", "SubmitJob", "OK"})->Increment(12);
  handled->WithLabels({"dino.v1.JobService", "Get\"Job\"\\x\nnl", "NOT_FOUND"})->Increment();
  Family<Gauge>* jobs = *registry.AddGauge("dino_jobs", "Jobs by state.", {"state"});
  jobs->WithLabels({"RUNNING"})->Set(2);
  jobs->WithLabels({"FAILED"})->Set(-0.25);
  Family<Gauge>* kl =
      *registry.AddGauge("dino_train_kl_teacher_student", "KL(teacher||student).", {"job", "rank"});
  kl->WithLabels({"j1", "0"})->Set(std::numeric_limits<double>::quiet_NaN());
  kl->WithLabels({"j1", "1"})->Set(std::numeric_limits<double>::infinity());
  kl->WithLabels({"j1", "2"})->Set(1.5e-9);
  Family<Histogram>* step = *registry.AddHistogram("dino_train_step_seconds", "Step time.",
                                                   {"job", "rank"}, DefaultLatencyBuckets());
  for (double v : {0.002, 0.3, 0.3, 12.0, 100.0}) step->WithLabels({"j1", "0"})->Observe(v);
  *registry.AddHistogram("dino_sqlite_write_seconds", "SQLite writes.", {}, {0.001, 0.01});
  *registry.AddGauge("dino_worker_assignment_info", "Current assignment.", {"job", "rank"});
  ASSERT_TRUE(RegisterProcessMetrics(&registry).ok());

  CheckResult result = PromtoolCheckMetrics(registry.Render());
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n" << registry.Render();
  EXPECT_EQ(result.output, "") << result.output;
}

// Guards the check itself: promtool must reject broken exposition, else the test above proves
// nothing.
TEST_F(MetricsPromtoolTest, RejectsBrokenExposition) {
  EXPECT_NE(PromtoolCheckMetrics("# TYPE x gauge\nx{a=\"unterminated} 1\n").exit_code, 0);
  EXPECT_NE(PromtoolCheckMetrics("# HELP dino_events h\n# TYPE dino_events counter\n"
                                 "dino_events 1\n")
                .exit_code,
            0);  // lint: counters end in _total
}

}  // namespace
}  // namespace metrics
}  // namespace dino
