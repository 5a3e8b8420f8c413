// Agent on a FakeWorkerLink and a SimulatedClock: reconnect backoff while the coordinator is
// unreachable, re-registration with the previous id, and heartbeats that go on while an aborted
// attempt's upload is in flight.
#include "worker/agent/agent.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/file_system.h"
#include "proto/dino/time_util.h"
#include "tests/worker/agent/fake_worker_link.h"

namespace dino::agent {
namespace {

using testing::AdvanceUntil;
using testing::FakeWorkerLink;
using testing::WaitFor;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("agent");
    ASSERT_FALSE(dir_.empty());
    dino::v1::RegisterResponse response;
    response.set_worker_id("w-1");
    *response.mutable_heartbeat_interval() = ToDurationProto(absl::Seconds(1));
    link_.SetRegisterResponse(response);
  }

  void StartAgent(AgentOptions options = {}) {
    options.name = "test-worker";
    options.runner.work_dir = dir_;
    agent_ = std::make_unique<Agent>(options, &link_, DefaultFileSystem(), &clock_);
    thread_ = std::thread([this] { agent_->Run(); });
  }

  void TearDown() override {
    if (agent_ == nullptr) return;
    agent_->Shutdown();
    link_.EndStream();
    // Run() may be in a backoff sleep on the simulated clock.
    std::atomic<bool> joined{false};
    std::thread joiner([&] {
      thread_.join();
      joined = true;
    });
    EXPECT_TRUE(AdvanceUntil(
        &clock_, [&] { return joined.load(); }, absl::Milliseconds(100)));
    joiner.join();
    agent_.reset();
  }

  std::string dir_;
  SimulatedClock clock_;
  FakeWorkerLink link_{&clock_, DefaultFileSystem()};
  std::unique_ptr<Agent> agent_;
  std::thread thread_;
};

TEST_F(AgentTest, BacksOffExponentiallyUpToACapWhileTheCoordinatorIsUnreachable) {
  std::atomic<bool> down{true};
  link_.SetAnswer([&](const std::string&) {
    return down.load() ? absl::UnavailableError("connection refused") : absl::OkStatus();
  });
  StartAgent();
  ASSERT_TRUE(AdvanceUntil(&clock_, [&] { return link_.count("register") >= 10; }));
  down = false;
  ASSERT_TRUE(AdvanceUntil(&clock_, [&] { return link_.streams() == 1; }));

  // 250 ms doubling up to 5 s, +-20% jitter, never more than the cap; on the simulated clock.
  const auto registers = link_.calls("register");
  const absl::Duration quantum = absl::Milliseconds(10);
  absl::Duration base = absl::Milliseconds(250);
  for (size_t i = 1; i < 10; ++i) {
    const absl::Duration gap = registers[i].time - registers[i - 1].time;
    EXPECT_GE(gap, base * 0.8 - quantum) << i;
    EXPECT_LE(gap, std::min(base * 1.2, absl::Seconds(5)) + quantum) << i;
    base = std::min(base * 2, absl::Seconds(5));
  }
  EXPECT_EQ(agent_->worker_id(), "w-1");
}

TEST_F(AgentTest, ReRegistersWithItsPreviousIdAfterTheStreamEnds) {
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return link_.streams() == 1; }));
  EXPECT_EQ(link_.calls("register")[0].register_request.previous_worker_id(), "");
  link_.EndStream();  // The coordinator restarted.
  ASSERT_TRUE(AdvanceUntil(&clock_, [&] { return link_.count("register") == 2; }));
  EXPECT_EQ(link_.calls("register")[1].register_request.previous_worker_id(), "w-1");
  ASSERT_TRUE(AdvanceUntil(&clock_, [&] { return link_.streams() == 2; }));
}

TEST_F(AgentTest, HeartbeatsAreDueOnTheInjectedClock) {
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return link_.heartbeats() >= 1; }));
  const int before = link_.heartbeats();
  absl::SleepFor(absl::Milliseconds(100));  // Real time alone makes no beat due.
  EXPECT_EQ(link_.heartbeats(), before);
  for (int i = 1; i <= 3; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(WaitFor([&] { return link_.heartbeats() >= before + i; })) << i;
  }
}

// After an abort the old attempt's upload (which may take up to its 30-minute deadline) is
// cancelled, and the agent keeps heartbeating meanwhile: the coordinator must not declare this
// healthy worker dead.
TEST_F(AgentTest, AnAbortCancelsTheUploadInFlightAndHeartbeatsGoOn) {
  std::atomic<bool> upload_started{false};
  std::atomic<bool> upload_cancelled{false};
  std::atomic<bool> test_over{false};
  link_.SetUploadHook([&](const dino::v1::CheckpointUploadHeader&, CancelToken* cancel) {
    upload_started = true;
    std::atomic<bool> cancelled{false};
    {
      CancelToken::Registration registration(cancel, [&] { cancelled = true; });
      WaitFor([&] { return cancelled.load() || test_over.load(); });
    }
    upload_cancelled = cancelled.load();
    return cancelled.load() ? absl::CancelledError("upload cancelled") : absl::OkStatus();
  });
  AgentOptions options;
  const std::string dir = dir_;
  options.runner.train = [dir](TrainRequest request) -> absl::StatusOr<run::RunResult> {
    run::LocalCheckpoint c;
    c.path = dir + "/ckpt-1";
    c.step = 1;
    EXPECT_TRUE(WriteFileAtomically(request.fs, c.path, "weights").ok());
    EXPECT_TRUE(request.callbacks.on_checkpoint(c).ok());
    while (!request.callbacks.should_stop()) absl::SleepFor(absl::Milliseconds(1));
    run::RunResult result;
    result.steps = 1;
    result.cancelled = true;
    return result;
  };
  StartAgent(options);
  ASSERT_TRUE(WaitFor([&] { return link_.streams() == 1; }));
  dino::v1::CoordinatorMessage assign;
  *assign.mutable_assignment() = testing::TestAssignment();
  link_.Push(assign);
  ASSERT_TRUE(WaitFor([&] { return upload_started.load(); }));

  dino::v1::CoordinatorMessage abort;
  abort.mutable_abort()->set_job_id(assign.assignment().job_id());
  abort.mutable_abort()->set_attempt(assign.assignment().attempt());
  abort.mutable_abort()->set_reason("a peer died");
  link_.Push(abort);
  const int before = link_.heartbeats();
  for (int i = 1; i <= 3; ++i) {
    clock_.Advance(absl::Seconds(1));
    EXPECT_TRUE(WaitFor([&] { return link_.heartbeats() >= before + i; }, absl::Seconds(10)))
        << "no heartbeat " << i << " after the abort";
  }
  EXPECT_TRUE(WaitFor([&] { return upload_cancelled.load(); }, absl::Seconds(10)));
  EXPECT_EQ(link_.count("result"), 0);  // Nothing is reported for an aborted attempt.
  test_over = true;
}

}  // namespace
}  // namespace dino::agent
