// AttemptRunner's control flow with a fake training (RunnerOptions::train) and a FakeWorkerLink:
// cancel, abort and preempt of an attempt, and what each reports to the coordinator.
#include "worker/agent/attempt_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/file_system.h"
#include "tests/worker/agent/fake_worker_link.h"

namespace dino::agent {
namespace {

using testing::FakeWorkerLink;
using testing::TestAssignment;
using testing::WaitFor;

// Trains "steps" until told to stop: progress every step, and a checkpoint file at each
// should_stop that ends the run (as the real run writes the checkpoint that was due).
struct FakeTraining {
  std::string dir;
  std::atomic<int> steps{0};
  std::atomic<bool> block_in_collective{false};
  std::atomic<int> checkpoint_at{-1};  // Also writes a checkpoint after this step.
  std::atomic<int> checkpoints{0};     // Handed to on_checkpoint.

  // Writes the checkpoint of the current step and hands it to the run's callback.
  void WriteCheckpoint(const TrainRequest& request) {
    run::LocalCheckpoint c;
    c.path = dir + "/ckpt-" + std::to_string(steps.load());
    c.step = steps.load();
    EXPECT_TRUE(WriteFileAtomically(request.fs, c.path, "weights").ok());
    EXPECT_TRUE(request.callbacks.on_checkpoint(c).ok());
    ++checkpoints;
  }

  absl::StatusOr<run::RunResult> operator()(TrainRequest request) {
    if (request.on_start) request.on_start(0);
    run::RunResult result;
    while (!request.callbacks.should_stop()) {
      if (block_in_collective.load()) {
        // A collective that only an abort breaks.
        std::atomic<bool> broken{false};
        CancelToken::Registration abort(request.abort, [&] { broken = true; });
        WaitFor([&] { return broken.load(); });
        return absl::AbortedError("collective aborted");
      }
      run::Progress p;
      p.step.step = steps++;
      request.callbacks.on_progress(p);
      if (steps.load() == checkpoint_at.load()) WriteCheckpoint(request);
      absl::SleepFor(absl::Milliseconds(1));
    }
    WriteCheckpoint(request);
    if (request.before_teardown) request.before_teardown();
    result.steps = steps.load();
    result.cancelled = true;
    return result;
  }
};

class AttemptRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("runner");
    ASSERT_FALSE(dir_.empty());
    training_.dir = dir_;
  }

  std::unique_ptr<AttemptRunner> Start() {
    RunnerOptions options;
    options.work_dir = dir_;
    options.train = [this](TrainRequest r) { return training_(std::move(r)); };
    auto runner = std::make_unique<AttemptRunner>(
        TestAssignment(), options, &link_, [] { return std::string("w-1"); }, DefaultFileSystem(),
        &clock_);
    runner->Start();
    EXPECT_TRUE(WaitFor([&] { return training_.steps.load() > 2; }));
    return runner;
  }

  std::string dir_;
  SimulatedClock clock_;
  FakeWorkerLink link_{&clock_, DefaultFileSystem()};
  FakeTraining training_;
};

TEST_F(AttemptRunnerTest, CancelStopsAtAStepBoundaryAndReportsCancelled) {
  auto runner = Start();
  runner->Cancel("user asked");
  ASSERT_TRUE(WaitFor([&] { return runner->done(); }));
  EXPECT_TRUE(runner->final_status().ok()) << runner->final_status();
  const auto results = link_.calls("result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].result.outcome(), dino::v1::ATTEMPT_OUTCOME_CANCELLED);
  EXPECT_EQ(results[0].result.final_step(), training_.steps.load());
}

TEST_F(AttemptRunnerTest, AbortBreaksACollectiveAndReportsNothing) {
  training_.block_in_collective = true;
  RunnerOptions options;
  options.work_dir = dir_;
  options.train = [this](TrainRequest r) { return training_(std::move(r)); };
  AttemptRunner runner(
      TestAssignment(), options, &link_, [] { return std::string("w-1"); }, DefaultFileSystem(),
      &clock_);
  runner.Start();
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(runner.done());
  runner.Abort("peer died");
  ASSERT_TRUE(WaitFor([&] { return runner.done(); }));
  EXPECT_TRUE(absl::IsAborted(runner.final_status())) << runner.final_status();
  EXPECT_EQ(link_.count("result"), 0);  // The coordinator expects no result after an abort.
}

TEST_F(AttemptRunnerTest, PreemptUploadsTheDueCheckpointThenReportsPreempted) {
  auto runner = Start();
  runner->Preempt("SIGTERM on the worker");
  ASSERT_TRUE(WaitFor([&] { return runner->done(); }));
  const auto calls = link_.calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().kind, "result");
  EXPECT_EQ(calls.back().result.outcome(), dino::v1::ATTEMPT_OUTCOME_FAILED);
  EXPECT_EQ(calls.back().result.failure_reason(), dino::v1::FAILURE_REASON_PREEMPTED);
  ASSERT_EQ(link_.count_ok("upload"), 1);
  EXPECT_EQ(link_.calls("upload")[0].upload.step(), training_.steps.load());
}

// The coordinator refuses a checkpoint for good (over --max-checkpoint-bytes): the rank stops
// training and reports FAILED with FAILURE_REASON_COORDINATOR_LIMIT naming the flag, and no upload
// is tried twice.
TEST_F(AttemptRunnerTest, ACheckpointTheCoordinatorRefusesFailsTheAttemptNamingTheFlag) {
  link_.SetAnswer([](const std::string& kind) {
    return kind == "upload" ? absl::OutOfRangeError(
                                  "checkpoint of 7 bytes is more than the coordinator's limit "
                                  "--max-checkpoint-bytes=5; not sent")
                            : absl::OkStatus();
  });
  training_.checkpoint_at = 5;
  auto runner = Start();
  ASSERT_TRUE(WaitFor([&] { return runner->done(); }, absl::Seconds(20)))
      << "still training after the refusal";
  const auto results = link_.calls("result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].result.outcome(), dino::v1::ATTEMPT_OUTCOME_FAILED);
  EXPECT_EQ(results[0].result.failure_reason(), dino::v1::FAILURE_REASON_COORDINATOR_LIMIT);
  EXPECT_THAT(results[0].result.message(), ::testing::HasSubstr("--max-checkpoint-bytes"));
  // One try per checkpoint written: a refusal is never retried.
  EXPECT_EQ(link_.count("upload"), training_.checkpoints.load());
}

}  // namespace
}  // namespace dino::agent
