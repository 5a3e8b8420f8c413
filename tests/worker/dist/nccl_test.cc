// The NCCL process group (DINO_WITH_CUDA builds): the header/library version check, which needs
// no GPU, and on a CUDA device a one-rank group's all-reduce and broadcast, the bucketed gradient
// sync over it (it must give what a local backward gives), and the failure paths: a group whose
// peer never comes fails its collective within the timeout with ABORTED instead of hanging, and
// an aborted group refuses further collectives and shuts down promptly. The device tests skip
// without CUDA; scripts/gpu-check runs them on one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/cuda_skip.h"
#include "tests/worker/dist/dist_test_util.h"
#include "worker/dist/bucketed_gradient_sync.h"
#include "worker/dist/free_port.h"
#include "worker/dist/process_group.h"

namespace dino::dist {
namespace {

using testing::LoopbackRendezvous;
using testing::TestOptions;

const torch::Device kCuda(torch::kCUDA, 0);

DistOptions NcclOptions(absl::Duration timeout = absl::Seconds(20)) {
  DistOptions o = TestOptions(timeout);
  o.device = kCuda;
  return o;
}

absl::StatusOr<std::unique_ptr<ProcessGroupHandle>> OneRankGroup(const std::string& job) {
  absl::StatusOr<int> port = PickFreeTcpPort();
  if (!port.ok()) return port.status();
  return CreateProcessGroup(LoopbackRendezvous(job, 0, 0, 1, *port), NcclOptions());
}

// Ends the process with a message if `body` has not returned within `limit`: a collective that
// hangs inside NCCL cannot be interrupted from a test, and a failure beats ctest's timeout.
template <typename Body>
void WithinOrDie(absl::Duration limit, const char* what, Body body) {
  std::atomic<bool> done{false};
  std::thread guard([&] {
    const absl::Time deadline = absl::Now() + limit;
    while (!done.load() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    if (!done.load()) {
      std::cerr << "FATAL: " << what << " still blocked after " << limit << "\n";
      std::_Exit(3);
    }
  });
  body();
  done.store(true);
  guard.join();
}

TEST(NcclTest, HeadersMatchTheNcclLibTorchLoads) { EXPECT_TRUE(CheckNcclHeaders().ok()) << CheckNcclHeaders(); }

TEST(NcclTest, OneRankAllReduceAndBroadcastOnTheDevice) {
  DINO_SKIP_WITHOUT_CUDA();
  auto group = OneRankGroup("nccl-one");
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ((*group)->backend_name(), "nccl");
  torch::Tensor t = torch::arange(1000, torch::TensorOptions().dtype(torch::kFloat).device(kCuda));
  const torch::Tensor expected = t.clone();
  ASSERT_TRUE((*group)->AllReduceSum(t).ok());
  EXPECT_TRUE(t.device().is_cuda());
  EXPECT_TRUE(torch::equal(t.cpu(), expected.cpu()));
  // A non-contiguous view goes through a contiguous copy and back.
  torch::Tensor m = torch::ones({8, 6}, torch::TensorOptions().device(kCuda)).t();
  ASSERT_TRUE((*group)->AllReduceSum(m).ok());
  EXPECT_EQ(m.sum().item<double>(), 48.0);
  ASSERT_TRUE((*group)->Broadcast(t, 0).ok());
  EXPECT_TRUE(torch::equal(t.cpu(), expected.cpu()));
  (*group)->Shutdown();
}

// The bucketed sync over NCCL with one rank: the gradients it writes back are the local ones
// (the average over one rank), for a model whose parameters span several buckets.
TEST(NcclTest, BucketedGradientSyncOverOneRankKeepsTheLocalGradients) {
  DINO_SKIP_WITHOUT_CUDA();
  auto group = OneRankGroup("nccl-sync");
  ASSERT_TRUE(group.ok()) << group.status();
  testing::Mlp model = testing::MakeMlp(7);
  model->to(kCuda);
  BucketedGradientSync sync(group->get(), GradientSyncOptions{64 * 4});
  ASSERT_TRUE(sync.Attach(model->parameters()).ok());
  const torch::Tensor x = torch::randn({32, 16}).to(kCuda);
  for (int step = 0; step < 3; ++step) {
    // The reference: the same backward without the sync.
    model->zero_grad();
    model->forward(x).pow(2).mean().backward();
    std::vector<torch::Tensor> local;
    for (auto& p : model->parameters()) local.push_back(p.grad().clone());
    model->zero_grad();
    sync.BeginStep();
    model->forward(x).pow(2).mean().backward();
    ASSERT_TRUE(sync.FinishStep().ok()) << "step " << step;
    const auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_LT((params[i].grad() - local[i]).abs().max().item<double>(), 1e-6)
          << "step " << step << " parameter " << i;
    }
  }
  EXPECT_GT(sync.bucket_layout().size(), 1u);
}

// Rank 1 joins the rendezvous and leaves before any collective: rank 0's first all-reduce (which
// creates the NCCL communicator through the store) must fail within its timeout with ABORTED and
// leave the process alive, and the group then refuses collectives at once.
TEST(NcclTest, MissingPeerAbortsTheCollectiveWithinTheTimeout) {
  DINO_SKIP_WITHOUT_CUDA();
  absl::StatusOr<int> port = PickFreeTcpPort();
  ASSERT_TRUE(port.ok());
  const absl::Duration timeout = absl::Seconds(5);
  std::unique_ptr<ProcessGroupHandle> rank0;
  absl::Status rank1_joined;
  std::thread peer([&] {
    auto g = CreateProcessGroup(LoopbackRendezvous("nccl-gone", 0, 1, 2, *port),
                                NcclOptions(timeout));
    rank1_joined = g.status();
    // Leaves at once: its backend and store go, no communicator was ever made.
  });
  auto g0 = CreateProcessGroup(LoopbackRendezvous("nccl-gone", 0, 0, 2, *port),
                               NcclOptions(timeout));
  peer.join();
  ASSERT_TRUE(rank1_joined.ok()) << rank1_joined;
  ASSERT_TRUE(g0.ok()) << g0.status();
  rank0 = std::move(*g0);
  torch::Tensor t = torch::ones({256}, torch::TensorOptions().device(kCuda));
  const absl::Time start = absl::Now();
  absl::Status s;
  WithinOrDie(timeout * 4 + absl::Seconds(10), "all-reduce without its peer",
              [&] { s = rank0->AllReduceSum(t); });
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_LT(absl::Now() - start, timeout * 4 + absl::Seconds(5));
  EXPECT_EQ(rank0->AllReduceSum(t).code(), absl::StatusCode::kAborted);
  WithinOrDie(absl::Seconds(30), "shutdown of an aborted NCCL group", [&] { rank0->Shutdown(); });
}

// Abort marks a working group unusable: collectives fail at once with the cause, and Shutdown
// (which aborts the NCCL communicators) returns promptly.
TEST(NcclTest, AbortedGroupRefusesCollectivesAndShutsDownPromptly) {
  DINO_SKIP_WITHOUT_CUDA();
  auto group = OneRankGroup("nccl-abort");
  ASSERT_TRUE(group.ok()) << group.status();
  torch::Tensor t = torch::ones({16}, torch::TensorOptions().device(kCuda));
  ASSERT_TRUE((*group)->AllReduceSum(t).ok());  // the communicator exists now
  (*group)->Abort(absl::UnavailableError("coordinator aborted the attempt"));
  const absl::Status refused = (*group)->AllReduceSum(t);
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted);
  EXPECT_NE(refused.message().find("coordinator aborted the attempt"), std::string::npos);
  WithinOrDie(absl::Seconds(30), "shutdown of an aborted NCCL group", [&] { (*group)->Shutdown(); });
}

}  // namespace
}  // namespace dino::dist
