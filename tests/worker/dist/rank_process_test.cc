// Ranks as real processes: a peer process (dist_rank_helper) is SIGKILLed while this process
// trains with it; this rank must return ABORTED within the group timeout, tear down without
// leaking threads or listening ports, and then train in a new group of the next attempt.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/worker/dist/dino_dist_test_util.h"
#include "tests/worker/dist/dist_test_util.h"
#include "worker/dino/trainer.h"
#include "worker/dist/bucketed_gradient_sync.h"
#include "worker/dist/c10d_collectives.h"
#include "worker/dist/free_port.h"

namespace dino::dist {
namespace {

using testing::kRankBatch;

std::string HelperPath() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string self(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return self.substr(0, self.rfind('/') + 1) + "dist_rank_helper";
}

// Starts dist_rank_helper as rank 1 of 2; returns its pid (or -1).
pid_t SpawnPeer(int port, const std::string& job, int64_t attempt, int64_t steps,
                absl::Duration timeout) {
  const std::string path = HelperPath();
  std::vector<std::string> args = {path,
                                   std::to_string(port),
                                   "1",
                                   "2",
                                   job,
                                   std::to_string(attempt),
                                   std::to_string(steps),
                                   std::to_string(absl::ToInt64Milliseconds(timeout))};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// This process as rank 0: a group, the Trainer, and the training loop.
struct RankZero {
  std::unique_ptr<ProcessGroupHandle> group;
  std::unique_ptr<C10dCollectives> collectives;
  std::unique_ptr<BucketedGradientSync> sync;
  std::unique_ptr<Trainer> trainer;
  TrainConfig config = testing::TinyDinoConfig(kRankBatch, 2);

  absl::Status Join(int port, const std::string& job, int64_t attempt, absl::Duration timeout) {
    auto g = CreateProcessGroup(testing::LoopbackRendezvous(job, attempt, 0, 2, port),
                                testing::TestOptions(timeout));
    if (!g.ok()) return g.status();
    group = *std::move(g);
    collectives = std::make_unique<C10dCollectives>(group.get());
    sync = std::make_unique<BucketedGradientSync>(group.get(), GradientSyncOptions{4096});
    auto t = Trainer::Create(config, collectives.get(), sync.get());
    if (!t.ok()) return t.status();
    trainer = *std::move(t);
    return absl::OkStatus();
  }
  absl::Status Step(int64_t step) {
    auto crops =
        testing::RankSlice(testing::MakeGlobalCrops(config, 2 * kRankBatch, step), 0, kRankBatch);
    return trainer->Step(crops).status();
  }
  void TearDown() {
    trainer.reset();
    sync.reset();
    collectives.reset();
    group.reset();
  }
};

int WaitForExit(pid_t pid, int* signal_out) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  *signal_out = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(RankProcessTest, KilledPeerAbortsSurvivorWhichThenTrainsInANewGroup) {
  const absl::Duration timeout = absl::Seconds(5);
  // Baseline after LibTorch has started whatever it keeps for the process's lifetime.
  {
    RankZero warm;
    warm.config = testing::TinyDinoConfig(kRankBatch, 1);
    auto port = PickFreeTcpPort();
    ASSERT_TRUE(port.ok());
    auto g = CreateProcessGroup(testing::LoopbackRendezvous("warm", 0, 0, 1, *port),
                                testing::TestOptions(timeout));
    ASSERT_TRUE(g.ok()) << g.status();
    C10dCollectives c(g->get());
    BucketedGradientSync s(g->get());
    auto t = Trainer::Create(warm.config, &c, &s);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_TRUE((*t)->Step(testing::MakeGlobalCrops(warm.config, kRankBatch, 0)).ok());
  }
  const int threads_before = testing::CountThreads();
  const int listening_before = testing::CountListeningSockets();

  // Attempt 0: the peer is killed while both train.
  auto port = PickFreeTcpPort();
  ASSERT_TRUE(port.ok());
  const pid_t peer = SpawnPeer(*port, "killed", 0, /*steps=*/-1, timeout);
  ASSERT_GT(peer, 0);
  RankZero rank0;
  absl::Status joined = rank0.Join(*port, "killed", 0, timeout);
  if (!joined.ok()) kill(peer, SIGKILL);
  ASSERT_TRUE(joined.ok()) << joined;
  std::atomic<int64_t> steps_done{0};
  std::atomic<int64_t> killed_at_ns{0};
  std::atomic<bool> stop{false};
  std::thread killer([&] {
    while (steps_done.load() < 2 && !stop.load()) absl::SleepFor(absl::Milliseconds(1));
    absl::SleepFor(absl::Milliseconds(3));  // into the next step
    killed_at_ns.store(absl::ToUnixNanos(absl::Now()));
    kill(peer, SIGKILL);
  });
  absl::Status failure;
  int64_t step = 0;
  for (; step < 10000 && failure.ok(); ++step) {
    failure = rank0.Step(step);
    if (failure.ok()) steps_done.store(step + 1);
  }
  const absl::Time failed_at = absl::Now();
  stop.store(true);
  killer.join();
  int signal = 0;
  WaitForExit(peer, &signal);
  EXPECT_EQ(signal, SIGKILL);
  EXPECT_EQ(failure.code(), absl::StatusCode::kAborted) << failure;
  EXPECT_EQ(rank0.group->health().code(), absl::StatusCode::kAborted);
  EXPECT_LT(failed_at - absl::FromUnixNanos(killed_at_ns.load()), timeout + absl::Seconds(2));
  EXPECT_GE(step, 3) << "the peer died before the survivor had trained: " << failure;

  rank0.TearDown();
  EXPECT_FALSE(testing::PortIsListening(*port));
  EXPECT_EQ(testing::CountListeningSockets(), listening_before);
  EXPECT_EQ(testing::CountThreads(), threads_before);

  // Attempt 1: a new peer process and a new group in this same process train together.
  auto port2 = PickFreeTcpPort();
  ASSERT_TRUE(port2.ok());
  constexpr int64_t kSteps = 3;
  const pid_t peer2 = SpawnPeer(*port2, "killed", 1, kSteps, timeout);
  ASSERT_GT(peer2, 0);
  RankZero again;
  joined = again.Join(*port2, "killed", 1, timeout);
  if (!joined.ok()) kill(peer2, SIGKILL);
  ASSERT_TRUE(joined.ok()) << joined;
  for (int64_t s = 0; s < kSteps; ++s) {
    absl::Status st = again.Step(s);
    if (!st.ok()) kill(peer2, SIGKILL);
    ASSERT_TRUE(st.ok()) << st;
  }
  // The helper runs the same agreement check after its last step.
  EXPECT_TRUE(
      VerifySameParameters(again.collectives.get(), testing::AgreementTensors(*again.trainer))
          .ok());
  EXPECT_EQ(WaitForExit(peer2, &signal), 0);
  again.TearDown();
  EXPECT_EQ(testing::CountThreads(), threads_before);
}

}  // namespace
}  // namespace dino::dist
