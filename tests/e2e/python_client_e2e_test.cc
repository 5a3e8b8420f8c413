// examples/python/submit_and_watch.py, run by Debian's /usr/bin/python3 with the stubs the build
// generates (target dino_proto_python), against a real dino-coordinator and dino-worker: it
// submits examples/python/synthetic-tiny.json and follows WatchJob until SUCCEEDED (exit 0), and
// on Ctrl-C (SIGINT) it cancels its job and exits 1 once the job is CANCELLED.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/cluster.h"

namespace dino::e2e {
namespace {

std::string SourceRoot() { return std::getenv("DINO_SOURCE_ROOT"); }

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::unique_ptr<Process> StartExample(Cluster& cluster, const std::string& spec,
                                      const std::string& log) {
  return std::make_unique<Process>(
      "submit_and_watch.py",
      std::vector<std::string>{
          "/usr/bin/python3", "-u", SourceRoot() + "/examples/python/submit_and_watch.py",
          "--coordinator", cluster.coordinator_address(), "--stubs", DINO_PYTHON_STUBS_DIR, spec},
      log);
}

TEST(PythonClientE2E, SubmitsAndWatchesUntilSucceeded) {
  Cluster cluster("python-client");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  const std::string log = cluster.dir() + "/submit_and_watch.log";
  auto script = StartExample(cluster, SourceRoot() + "/examples/python/synthetic-tiny.json", log);
  auto code = script->Wait(absl::Seconds(120));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << ReadText(log) << cluster.Logs();
  const std::string out = ReadText(log);
  EXPECT_EQ(*code, 0) << out << cluster.Logs();
  EXPECT_NE(out.find("state JOB_STATE_RUNNING"), std::string::npos) << out;
  EXPECT_NE(out.find(" step "), std::string::npos) << out;  // Progress events.
  EXPECT_NE(out.find("state JOB_STATE_SUCCEEDED"), std::string::npos) << out;

  // The job id on the first line is a real, succeeded job.
  const std::string id = out.substr(0, out.find('\n'));
  auto job = cluster.GetJob(id);
  ASSERT_TRUE(job.ok()) << job.status() << "\n" << out;
  EXPECT_EQ(job->state(), dino::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->spec().labels().at("example"), "python");
}

TEST(PythonClientE2E, CtrlCCancelsTheJob) {
  Cluster cluster("python-client-sigint");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  // The example spec, made long enough to be interrupted.
  std::string spec = ReadText(SourceRoot() + "/examples/python/synthetic-tiny.json");
  const std::string original = spec;
  absl::StrReplaceAll({{"\"epochs\": 1,", "\"epochs\": 10000,"}}, &spec);
  ASSERT_NE(spec, original);
  const std::string spec_path = cluster.dir() + "/long.json";
  std::ofstream(spec_path) << spec;

  const std::string log = cluster.dir() + "/submit_and_watch.log";
  auto script = StartExample(cluster, spec_path, log);
  // Interrupt once it watches a running job (it prints progress lines).
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (ReadText(log).find(" step ") == std::string::npos) {
    ASSERT_LT(absl::Now(), deadline) << ReadText(log) << cluster.Logs();
    ASSERT_TRUE(script->running()) << ReadText(log) << cluster.Logs();
    absl::SleepFor(absl::Milliseconds(100));
  }
  script->Signal(SIGINT);
  auto code = script->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << ReadText(log) << cluster.Logs();
  const std::string out = ReadText(log);
  EXPECT_EQ(*code, 1) << out;
  EXPECT_NE(out.find("cancelling "), std::string::npos) << out;
  EXPECT_NE(out.find("state JOB_STATE_CANCELLED"), std::string::npos) << out;
  auto job = cluster.GetJob(out.substr(0, out.find('\n')));
  ASSERT_TRUE(job.ok()) << job.status() << "\n" << out;
  EXPECT_EQ(job->state(), dino::v1::JOB_STATE_CANCELLED);
}

}  // namespace
}  // namespace dino::e2e
