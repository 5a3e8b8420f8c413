#include "worker/dist/process_group.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/worker/dist/dist_test_util.h"
#include "worker/dist/c10d_collectives.h"
#include "worker/dist/free_port.h"

namespace dino::dist {
namespace {

using testing::CountListeningSockets;
using testing::CountThreads;
using testing::LoopbackRendezvous;
using testing::RunRanks;
using testing::TestOptions;

TEST(ProcessGroupTest, AllReduceAndBroadcastOverGlooOnThreads) {
  static constexpr int kWorld = 3;
  absl::Status s = RunRanks(kWorld, "pg-basic", [](int rank, ProcessGroupHandle* group) {
    EXPECT_EQ(group->rank(), rank);
    EXPECT_EQ(group->world_size(), kWorld);
    EXPECT_EQ(group->backend_name(), "gloo");
    C10dCollectives coll(group);
    torch::Tensor t = torch::full({4}, static_cast<float>(rank + 1));
    if (auto st = coll.AllReduceSum(t); !st.ok()) return st;
    EXPECT_TRUE(torch::equal(t, torch::full({4}, 6.0f))) << t;
    // Non-contiguous tensors are reduced in place too.
    torch::Tensor m = torch::full({3, 2}, static_cast<float>(rank)).t();
    if (auto st = coll.AllReduceSum(m); !st.ok()) return st;
    EXPECT_TRUE(torch::equal(m, torch::full({2, 3}, 3.0f))) << m;
    torch::Tensor b = torch::arange(5, torch::kFloat32) * (rank + 1);
    if (auto st = coll.Broadcast(b, 2); !st.ok()) return st;
    EXPECT_TRUE(torch::equal(b, torch::arange(5, torch::kFloat32) * 3)) << b;
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

TEST(ProcessGroupTest, GlobalMeansAverageOverRanks) {
  absl::Status s = RunRanks(2, "pg-means", [](int rank, ProcessGroupHandle* group) {
    C10dCollectives coll(group);
    const std::vector<double> local = {rank == 0 ? 1.0 : 3.0, rank * 10.0};
    auto means = GlobalMeans(&coll, local);
    if (!means.ok()) return means.status();
    EXPECT_DOUBLE_EQ((*means)[0], 2.0);
    EXPECT_DOUBLE_EQ((*means)[1], 5.0);
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

TEST(ProcessGroupTest, CpuTensorRequiredForGloo) {
  absl::Status s = RunRanks(1, "pg-device", [](int, ProcessGroupHandle* group) {
    C10dCollectives coll(group);
    torch::Tensor undefined;
    EXPECT_EQ(coll.AllReduceSum(undefined).code(), absl::StatusCode::kInvalidArgument);
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

TEST(ProcessGroupTest, RejectsBadRendezvous) {
  auto r = LoopbackRendezvous("job", 0, 2, 2, 29500);
  EXPECT_EQ(CreateProcessGroup(r, TestOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = LoopbackRendezvous("", 0, 0, 1, 29500);
  EXPECT_EQ(CreateProcessGroup(r, TestOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = LoopbackRendezvous("job", 0, 0, 1, 70000);
  EXPECT_EQ(CreateProcessGroup(r, TestOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
#if !defined(DINO_WITH_CUDA)
  DistOptions cuda = TestOptions();
  cuda.device = torch::Device(torch::kCUDA, 0);
  EXPECT_EQ(CreateProcessGroup(LoopbackRendezvous("job", 0, 0, 1, 29500), cuda).status().code(),
            absl::StatusCode::kInvalidArgument);
#endif
}

TEST(ProcessGroupTest, PrefixIsJobAndAttempt) {
  EXPECT_EQ(StorePrefix(LoopbackRendezvous("job-7", 3, 0, 2, 1)), "job-7/3/");
}

TEST(ProcessGroupTest, TakenPortIsReportedAsSuch) {
  auto port = PickFreeTcpPort();
  ASSERT_TRUE(port.ok());
  auto first = CreateProcessGroup(LoopbackRendezvous("job-a", 0, 0, 1, *port), TestOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = CreateProcessGroup(LoopbackRendezvous("job-b", 0, 0, 1, *port), TestOptions());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("rendezvous port " + std::to_string(*port) +
                                           " on rank 0 is already in use"),
            std::string::npos)
      << second.status();
}

TEST(ProcessGroupTest, UnreachableRankZeroIsUnavailableWithinTimeout) {
  auto port = PickFreeTcpPort();
  ASSERT_TRUE(port.ok());
  const absl::Time start = absl::Now();
  auto group = CreateProcessGroup(LoopbackRendezvous("job", 0, 1, 2, *port),
                                  TestOptions(absl::Seconds(10), absl::Milliseconds(800)));
  EXPECT_EQ(group.status().code(), absl::StatusCode::kUnavailable) << group.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ProcessGroupTest, HungPeerAbortsSurvivorWithinTimeoutAndTearsDownCleanly) {
  const int threads_before = CountThreads();
  const int listening_before = CountListeningSockets();
  auto port = PickFreeTcpPort();
  ASSERT_TRUE(port.ok());
  const absl::Duration timeout = absl::Seconds(1);
  absl::Notification hung_peer_may_leave;
  absl::Status peer_status;
  absl::Status survivor_status;
  absl::Duration survivor_wait;
  std::thread peer([&] {
    auto group =
        CreateProcessGroup(LoopbackRendezvous("hang", 0, 1, 2, *port), TestOptions(timeout));
    peer_status = group.status();
    // Never joins the collective: a hung peer.
    hung_peer_may_leave.WaitForNotification();
  });
  {
    auto group =
        CreateProcessGroup(LoopbackRendezvous("hang", 0, 0, 2, *port), TestOptions(timeout));
    if (group.ok()) {
      EXPECT_TRUE(testing::PortIsListening(*port));
      torch::Tensor t = torch::ones({8});
      const absl::Time start = absl::Now();
      survivor_status = (*group)->AllReduceSum(t);
      survivor_wait = absl::Now() - start;
      // Once aborted, the group fails fast instead of waiting again.
      const absl::Time again = absl::Now();
      EXPECT_EQ((*group)->AllReduceSum(t).code(), absl::StatusCode::kAborted);
      EXPECT_LT(absl::Now() - again, absl::Milliseconds(100));
    }
    hung_peer_may_leave.Notify();
    peer.join();
    ASSERT_TRUE(group.ok()) << group.status();
    ASSERT_TRUE(peer_status.ok()) << peer_status;
  }
  EXPECT_EQ(survivor_status.code(), absl::StatusCode::kAborted) << survivor_status;
  EXPECT_LT(survivor_wait, timeout + absl::Seconds(2));
  EXPECT_GE(survivor_wait, timeout - absl::Milliseconds(200));
  EXPECT_FALSE(testing::PortIsListening(*port));
  EXPECT_EQ(CountListeningSockets(), listening_before);
  EXPECT_EQ(CountThreads(), threads_before);
}

TEST(ProcessGroupTest, NewAttemptOnSamePortAfterShutdown) {
  auto port = PickFreeTcpPort();
  ASSERT_TRUE(port.ok());
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        auto group =
            CreateProcessGroup(LoopbackRendezvous("again", attempt, r, 2, *port), TestOptions());
        ASSERT_TRUE(group.ok()) << group.status();
        torch::Tensor t = torch::ones({2});
        ASSERT_TRUE((*group)->AllReduceSum(t).ok());
        EXPECT_TRUE(torch::equal(t, torch::full({2}, 2.0f)));
      });
    }
    for (auto& t : threads) t.join();
  }
}

}  // namespace
}  // namespace dino::dist
