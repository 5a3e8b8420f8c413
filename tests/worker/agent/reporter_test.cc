// Reporter on a FakeWorkerLink and a SimulatedClock: the order of what reaches the coordinator,
// retries with backoff across a coordinator restart, a stale attempt, a pruned checkpoint.
#include "worker/agent/reporter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "common/file_system.h"
#include "tests/worker/agent/fake_worker_link.h"

namespace dino::agent {
namespace {

using testing::AdvanceUntil;
using testing::FakeWorkerLink;
using testing::WaitFor;

class ReporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("reporter");
    ASSERT_FALSE(dir_.empty());
  }

  std::unique_ptr<Reporter> NewReporter() {
    return std::make_unique<Reporter>(
        &link_, "job-1", 3, [] { return std::string("w-1"); }, DefaultFileSystem(), &clock_,
        &cancel_);
  }
  std::string Checkpoint(int step) {
    const std::string path = dir_ + "/ckpt-" + std::to_string(step);
    EXPECT_TRUE(WriteFileAtomically(DefaultFileSystem(), path, "bytes").ok());
    return path;
  }
  static dino::v1::CheckpointUploadHeader Header(int step) {
    dino::v1::CheckpointUploadHeader h;
    h.set_job_id("job-1");
    h.set_attempt(3);
    h.set_step(step);
    return h;
  }
  static dino::v1::StepStats Stats(int step) {
    dino::v1::StepStats s;
    s.set_step(step);
    return s;
  }
  static dino::v1::ReportResultRequest Result() {
    dino::v1::ReportResultRequest r;
    r.set_job_id("job-1");
    r.set_attempt(3);
    r.set_outcome(dino::v1::ATTEMPT_OUTCOME_SUCCEEDED);
    return r;
  }

  std::string dir_;
  SimulatedClock clock_;
  FakeWorkerLink link_{&clock_, DefaultFileSystem()};
  CancelToken cancel_;
};

TEST_F(ReporterTest, SendsProgressCheckpointsInOrderAndTheResultAfterTheUploads) {
  // The first upload waits until the test lets it go, with the result already queued.
  std::atomic<bool> release{false};
  link_.SetUploadHook([&](const dino::v1::CheckpointUploadHeader& h, CancelToken*) {
    if (h.step() == 10) WaitFor([&] { return release.load(); });
    return absl::OkStatus();
  });
  auto reporter = NewReporter();
  reporter->AddProgress(Stats(1));
  reporter->AddCheckpoint(Header(10), Checkpoint(10));
  reporter->AddCheckpoint(Header(20), Checkpoint(20));
  ASSERT_TRUE(WaitFor([&] { return link_.count("progress") == 1; }));
  reporter->AddProgress(Stats(2));
  reporter->SetResult(Result());
  absl::SleepFor(absl::Milliseconds(50));  // Room for a wrong result to overtake; none may.
  EXPECT_EQ(link_.count("result"), 0);
  release = true;
  ASSERT_TRUE(reporter->Drain(nullptr).ok());

  std::vector<std::string> order;
  int progress_stats = 0;
  for (const auto& call : link_.calls()) {
    order.push_back(call.kind == "upload" ? "upload-" + std::to_string(call.upload.step())
                                          : call.kind);
    progress_stats += call.progress.stats_size();
  }
  ASSERT_GE(order.size(), 4u);
  EXPECT_EQ(order.back(), "result");
  EXPECT_EQ(progress_stats, 2);
  const auto first = std::find(order.begin(), order.end(), "upload-10");
  const auto second = std::find(order.begin(), order.end(), "upload-20");
  EXPECT_LT(first, second);
  EXPECT_EQ(link_.count("result"), 1);
  EXPECT_EQ(link_.calls("result")[0].result.worker_id(), "w-1");
}

TEST_F(ReporterTest, RetriesThroughACoordinatorRestartWithBackoffOnTheClock) {
  std::atomic<bool> down{true};
  link_.SetAnswer([&](const std::string&) {
    return down.load() ? absl::UnavailableError("connection refused") : absl::OkStatus();
  });
  auto reporter = NewReporter();
  reporter->AddProgress(Stats(1));
  reporter->AddCheckpoint(Header(10), Checkpoint(10));
  reporter->SetResult(Result());
  ASSERT_TRUE(AdvanceUntil(&clock_, [&] { return link_.count("progress") >= 8; }));
  down = false;  // The coordinator is back.
  ASSERT_TRUE(AdvanceUntil(&clock_, [&] { return link_.count_ok("result") == 1; }));
  ASSERT_TRUE(reporter->Drain(nullptr).ok());

  // Capped exponential backoff (200 ms doubling up to 5 s, +-20% jitter), on the simulated clock.
  const auto progress = link_.calls("progress");
  const absl::Duration quantum = absl::Milliseconds(10);
  absl::Duration base = absl::Milliseconds(200);
  for (size_t i = 1; i < 8; ++i) {
    const absl::Duration gap = progress[i].time - progress[i - 1].time;
    EXPECT_GE(gap, base * 0.8 - quantum) << i;
    EXPECT_LE(gap, std::min(base * 1.2, absl::Seconds(5)) + quantum) << i;
    base = std::min(base * 2, absl::Seconds(5));
  }
  EXPECT_TRUE(progress.back().status.ok());
  EXPECT_EQ(link_.count_ok("upload"), 1);
  EXPECT_EQ(link_.calls().back().kind, "result");
}

TEST_F(ReporterTest, FailedPreconditionMakesTheReporterStaleAndSendsNothingMore) {
  link_.SetAnswer([](const std::string& kind) {
    return kind == "upload" ? absl::FailedPreconditionError("attempt 3 is not current")
                            : absl::OkStatus();
  });
  auto reporter = NewReporter();
  reporter->AddCheckpoint(Header(10), Checkpoint(10));
  reporter->AddCheckpoint(Header(20), Checkpoint(20));
  reporter->SetResult(Result());
  absl::Status drained = reporter->Drain(nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(drained)) << drained;
  EXPECT_TRUE(reporter->stale());
  EXPECT_EQ(link_.count("upload"), 1);
  EXPECT_EQ(link_.count("result"), 0);
}

TEST_F(ReporterTest, SkipsACheckpointPrunedBeforeItWasSent) {
  auto reporter = NewReporter();
  reporter->AddCheckpoint(Header(10), dir_ + "/pruned");
  reporter->AddCheckpoint(Header(20), Checkpoint(20));
  reporter->SetResult(Result());
  ASSERT_TRUE(reporter->Drain(nullptr).ok());
  const auto uploads = link_.calls("upload");
  ASSERT_EQ(uploads.size(), 1u);
  EXPECT_EQ(uploads[0].upload.step(), 20);
  EXPECT_EQ(link_.count_ok("result"), 1);
}

}  // namespace
}  // namespace dino::agent
