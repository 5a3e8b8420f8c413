#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/worker/dist/dist_test_util.h"
#include "worker/dist/bucketed_gradient_sync.h"
#include "worker/dist/c10d_collectives.h"

namespace dino::dist {
namespace {

using testing::MakeMlp;
using testing::Mlp;
using testing::RunRanks;

#define RETURN_IF_FAILED(expr) \
  do {                         \
    absl::Status _s = (expr);  \
    if (!_s.ok()) return _s;   \
  } while (0)

constexpr int kBatch = 6;  // per rank

// The samples of step `step`: rank r of 2 gets rows [r*kBatch, (r+1)*kBatch) of the full batch.
// A private generator: rank threads draw concurrently, and must all see the same batch.
std::pair<torch::Tensor, torch::Tensor> FullBatch(int step, int in = 16, int out = 8) {
  at::Generator gen = at::detail::createCPUGenerator(1000 + step);
  auto x = torch::randn({2 * kBatch, in}, gen);
  auto y = torch::randn({2 * kBatch, out}, gen);
  return {x, y};
}

torch::Tensor Loss(Mlp& model, const torch::Tensor& x, const torch::Tensor& y) {
  return torch::mse_loss(model->forward(x), y);  // mean over the batch
}

// K SGD steps on one rank with the full batch: the reference for data parallelism.
std::vector<torch::Tensor> ReferenceAfterSteps(int steps, double lr) {
  Mlp model = MakeMlp(7);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(lr));
  for (int s = 0; s < steps; ++s) {
    auto [x, y] = FullBatch(s);
    opt.zero_grad();
    Loss(model, x, y).backward();
    opt.step();
  }
  std::vector<torch::Tensor> out;
  for (auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

// K SGD steps on `group` with this rank's half of each batch.
absl::Status TrainShard(ProcessGroupHandle* group, int steps, double lr, int64_t bucket_cap,
                        std::vector<torch::Tensor>* params_out,
                        std::vector<StepTrace>* traces = nullptr) {
  Mlp model = MakeMlp(7);
  BucketedGradientSync sync(group, GradientSyncOptions{bucket_cap});
  RETURN_IF_FAILED(sync.Attach(model->parameters()));
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(lr));
  for (int s = 0; s < steps; ++s) {
    auto [x, y] = FullBatch(s);
    const int r = group->rank();
    opt.zero_grad();
    sync.BeginStep();
    Loss(model, x.narrow(0, r * kBatch, kBatch), y.narrow(0, r * kBatch, kBatch)).backward();
    RETURN_IF_FAILED(sync.FinishStep());
    if (traces) traces->push_back(sync.last_trace());
    opt.step();
  }
  for (auto& p : model->parameters()) params_out->push_back(p.detach().clone());
  return absl::OkStatus();
}

TEST(BucketedGradientSyncTest, LayoutIsReverseOrderWithinCap) {
  absl::Status s = RunRanks(1, "layout", [](int, ProcessGroupHandle* group) {
    // Parameter i: w0 512, b0 32, w1 1024, b1 32, w2 1024, b2 32, w3 256, b3 8 floats.
    Mlp model = MakeMlp(1, 16, 32, 8, 4);
    // A cap of 1100 floats, filled greedily from the last parameter: 8+256+32 = 296 (+1024 would
    // exceed), 1024+32, 1024+32, 512.
    BucketedGradientSync sync(group, GradientSyncOptions{4 * 1100});
    RETURN_IF_FAILED(sync.Attach(model->parameters()));
    const std::vector<std::vector<int>> expected = {{7, 6, 5}, {4, 3}, {2, 1}, {0}};
    EXPECT_EQ(sync.bucket_layout(), expected);
    // Parameters larger than the cap get buckets of their own.
    BucketedGradientSync tiny(group, GradientSyncOptions{64});
    RETURN_IF_FAILED(tiny.Attach(model->parameters()));
    const std::vector<std::vector<int>> singletons = {{7}, {6}, {5}, {4}, {3}, {2}, {1}, {0}};
    EXPECT_EQ(tiny.bucket_layout(), singletons);
    BucketedGradientSync one_bucket(group);
    RETURN_IF_FAILED(one_bucket.Attach(model->parameters()));
    EXPECT_EQ(one_bucket.bucket_layout().size(), 1u);
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

TEST(BucketedGradientSyncTest, AttachRejectsNonTrainableParameters) {
  absl::Status s = RunRanks(1, "attach", [](int, ProcessGroupHandle* group) {
    BucketedGradientSync sync(group);
    EXPECT_EQ(sync.Attach({torch::zeros({3})}).code(), absl::StatusCode::kInvalidArgument);
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

// Two ranks with batch B each equal one rank with batch 2B, for several bucket sizes.
TEST(BucketedGradientSyncTest, TwoRanksMatchOneRankWithDoubleBatch) {
  constexpr int kSteps = 3;
  constexpr double kLr = 0.1;
  const auto reference = ReferenceAfterSteps(kSteps, kLr);
  for (int64_t cap : {int64_t{64}, int64_t{4096}, int64_t{25} << 20}) {
    std::vector<torch::Tensor> ranks_params[2];
    absl::Status s = RunRanks(2, "equiv", [&](int rank, ProcessGroupHandle* group) {
      return TrainShard(group, kSteps, kLr, cap, &ranks_params[rank]);
    });
    ASSERT_TRUE(s.ok()) << s;
    for (int r = 0; r < 2; ++r) {
      ASSERT_EQ(ranks_params[r].size(), reference.size());
      for (size_t i = 0; i < reference.size(); ++i) {
        EXPECT_TRUE(torch::allclose(ranks_params[r][i], reference[i], 1e-5, 1e-6))
            << "cap " << cap << " rank " << r << " param " << i;
        // Consistency: the ranks hold bit-identical parameters.
        EXPECT_TRUE(torch::equal(ranks_params[r][i], ranks_params[0][i]));
      }
    }
  }
}

TEST(BucketedGradientSyncTest, BucketsLaunchInOrderBeforeBackwardEnds) {
  absl::Status s = RunRanks(2, "overlap", [](int rank, ProcessGroupHandle* group) {
    torch::manual_seed(3);
    Mlp model = Mlp(256, 256, 256, 8);
    BucketedGradientSync sync(group, GradientSyncOptions{256 * 256 * 4});  // one layer a bucket
    RETURN_IF_FAILED(sync.Attach(model->parameters()));
    for (int step = 0; step < 2; ++step) {
      auto x = torch::randn({64, 256}) + rank;
      sync.BeginStep();
      model->forward(x).square().mean().backward();
      const absl::Time backward_returned = absl::Now();
      RETURN_IF_FAILED(sync.FinishStep());
      const StepTrace trace = sync.last_trace();
      const int buckets = static_cast<int>(sync.bucket_layout().size());
      EXPECT_GE(buckets, 8);
      EXPECT_EQ(static_cast<int>(trace.launches.size()), buckets);
      for (int b = 0; b < static_cast<int>(trace.launches.size()); ++b) {
        EXPECT_EQ(trace.launches[b].bucket, b);
        EXPECT_TRUE(trace.launches[b].during_backward) << "bucket " << b;
      }
      // The first bucket left while most of backward was still to run.
      EXPECT_LT(trace.launches.front().at, backward_returned);
      EXPECT_LT(trace.launches.front().at, trace.launches.back().at);
      EXPECT_LE(trace.finish_step_called, trace.reduced);
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

// The last layer (bucket 0, like DINO's frozen last layer) gets no grad at first, then trains.
// Without the rebuild it stays in bucket 0, so its first gradients miss their bucket and take the
// late all-reduce; with the rebuild it moves to the last buckets (it produced no gradient in the
// first step) and its gradients ride with them.
class FrozenLastLayerTest : public ::testing::TestWithParam<bool> {};

TEST_P(FrozenLastLayerTest, NeitherDeadlocksNorBlocksOverlap) {
  const bool rebuild = GetParam();
  constexpr int kSteps = 5;
  constexpr int kUnfreezeAt = 3;
  auto forward = [](Mlp& model, const torch::Tensor& x, bool frozen) {
    auto h = x;
    const size_t n = model->layers->size();
    for (size_t i = 0; i + 1 < n; ++i) {
      h = torch::tanh(model->layers[i]->as<torch::nn::Linear>()->forward(h));
    }
    auto last = model->layers[n - 1]->as<torch::nn::Linear>();
    return frozen ? torch::nn::functional::linear(h, last->weight.detach(), last->bias.detach())
                  : last->forward(h);
  };
  // Reference: one rank, full batch, same freezing.
  std::vector<std::vector<torch::Tensor>> ref_grads(kSteps);
  {
    Mlp model = MakeMlp(7);
    for (int s = 0; s < kSteps; ++s) {
      auto [x, y] = FullBatch(s);
      model->zero_grad();
      torch::mse_loss(forward(model, x, s < kUnfreezeAt), y).backward();
      for (auto& p : model->parameters()) {
        ref_grads[s].push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
      }
    }
  }
  absl::Status s = RunRanks(2, "frozen", [&](int rank, ProcessGroupHandle* group) {
    Mlp model = MakeMlp(7);
    BucketedGradientSync sync(group, GradientSyncOptions{600, rebuild});
    RETURN_IF_FAILED(sync.Attach(model->parameters()));
    EXPECT_EQ(sync.bucket_layout().front().front(), 7);  // the last layer's bias leads bucket 0
    for (int step = 0; step < kSteps; ++step) {
      auto [x, y] = FullBatch(step);
      model->zero_grad();
      sync.BeginStep();
      torch::mse_loss(forward(model, x.narrow(0, rank * kBatch, kBatch), step < kUnfreezeAt),
                      y.narrow(0, rank * kBatch, kBatch))
          .backward();
      RETURN_IF_FAILED(sync.FinishStep());
      const auto params = model->parameters();
      for (size_t i = 0; i < params.size(); ++i) {
        const auto& ref = ref_grads[step][i];
        EXPECT_EQ(params[i].grad().defined(), ref.defined()) << "step " << step << " param " << i;
        if (ref.defined() && params[i].grad().defined()) {
          EXPECT_TRUE(torch::allclose(params[i].grad(), ref, 1e-5, 1e-7))
              << "step " << step << " param " << i;
        }
      }
      const StepTrace trace = sync.last_trace();
      // Step 0 must wait for the frozen bucket; afterwards the frozen layer is not expected and
      // backward launches buckets again. The step that unfreezes sends the late grads separately.
      if (step > 0 && step != kUnfreezeAt) {
        EXPECT_TRUE(trace.launches.front().during_backward) << "step " << step;
      }
      EXPECT_EQ(trace.late_gradient_pass, !rebuild && step == kUnfreezeAt) << "step " << step;
      if (rebuild && step == 0) {
        const std::vector<std::vector<int>> arrival = {{5}, {4}, {3}, {2}, {1}, {0}, {7}, {6}};
        EXPECT_EQ(sync.bucket_layout(), arrival);
      }
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}
INSTANTIATE_TEST_SUITE_P(Rebuild, FrozenLastLayerTest, ::testing::Bool());

// Parameters listed against their backward order: after the first step the buckets follow the
// order the gradients arrived in, and launch during backward from then on.
TEST(BucketedGradientSyncTest, RebuildsBucketsInGradientArrivalOrder) {
  absl::Status s = RunRanks(2, "rebuild", [](int rank, ProcessGroupHandle* group) {
    std::vector<torch::Tensor> p;
    for (int i = 0; i < 3; ++i) p.push_back(torch::full({64}, 1.0 + i, torch::requires_grad()));
    BucketedGradientSync sync(group, GradientSyncOptions{64 * 4});  // one parameter a bucket
    RETURN_IF_FAILED(sync.Attach(p));
    const std::vector<std::vector<int>> reverse = {{2}, {1}, {0}};
    EXPECT_EQ(sync.bucket_layout(), reverse);
    for (int step = 0; step < 3; ++step) {
      for (auto& t : p) t.mutable_grad() = torch::Tensor();
      sync.BeginStep();
      // p2 is used first, p0 last: backward reaches p0 first.
      ((p[2] * (rank + 1.0)) * p[1] * p[0]).sum().backward();
      RETURN_IF_FAILED(sync.FinishStep());
      // d/dp0 = (rank+1) * p1 * p2 = (rank+1) * 6; the mean over ranks is 9.
      EXPECT_TRUE(torch::allclose(p[0].grad(), torch::full({64}, 9.0f)));
      const std::vector<std::vector<int>> arrival = {{0}, {1}, {2}};
      EXPECT_EQ(sync.bucket_layout(), arrival) << "step " << step;
      const StepTrace trace = sync.last_trace();
      if (step > 0) {
        EXPECT_EQ(trace.launches.size(), 3u);
        for (const auto& launch : trace.launches) EXPECT_TRUE(launch.during_backward);
      }
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

// A parameter used on one rank only is averaged with zeros from the other; one used nowhere keeps
// an undefined grad on every rank.
TEST(BucketedGradientSyncTest, RankDependentUnusedParametersAgree) {
  absl::Status s = RunRanks(2, "unused", [](int rank, ProcessGroupHandle* group) {
    torch::manual_seed(5);
    auto a = torch::randn({4}, torch::requires_grad());
    auto b = torch::randn({4}, torch::requires_grad());
    auto never = torch::randn({4}, torch::requires_grad());
    BucketedGradientSync sync(group, GradientSyncOptions{16});
    RETURN_IF_FAILED(sync.Attach({a, b, never}));
    for (int step = 0; step < 3; ++step) {
      a.mutable_grad() = torch::Tensor();
      b.mutable_grad() = torch::Tensor();
      sync.BeginStep();
      auto loss = (a * 2).sum();
      if (rank == 0) loss = loss + (b * 3).sum();
      loss.backward();
      RETURN_IF_FAILED(sync.FinishStep());
      EXPECT_TRUE(torch::allclose(a.grad(), torch::full({4}, 2.0f)));
      EXPECT_TRUE(b.grad().defined()) << "rank " << rank;
      if (b.grad().defined()) {
        EXPECT_TRUE(torch::allclose(b.grad(), torch::full({4}, 1.5f)));
      }
      EXPECT_FALSE(never.grad().defined());
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

TEST(BucketedGradientSyncTest, HungPeerMakesFinishStepAbortWithinTimeout) {
  absl::Notification survivor_done;
  absl::Status survivor;
  absl::Duration waited;
  absl::Status s = RunRanks(
      2, "hung-step",
      [&](int rank, ProcessGroupHandle* group) {
        if (rank == 1) {  // joins, then never steps
          survivor_done.WaitForNotification();
          return absl::OkStatus();
        }
        Mlp model = MakeMlp(7);
        BucketedGradientSync sync(group, GradientSyncOptions{600});
        RETURN_IF_FAILED(sync.Attach(model->parameters()));
        auto [x, y] = FullBatch(0);
        sync.BeginStep();
        Loss(model, x, y).backward();
        const absl::Time start = absl::Now();
        survivor = sync.FinishStep();
        waited = absl::Now() - start;
        EXPECT_EQ(group->health().code(), absl::StatusCode::kAborted);
        survivor_done.Notify();
        return absl::OkStatus();
      },
      absl::Seconds(1));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(survivor.code(), absl::StatusCode::kAborted) << survivor;
  EXPECT_LT(waited, absl::Seconds(3));
}

TEST(VerifySameParametersTest, AgreesOnSameAndCatchesDifferentCheckpoints) {
  absl::Status s = RunRanks(2, "verify", [](int rank, ProcessGroupHandle* group) {
    C10dCollectives coll(group);
    Mlp same = MakeMlp(11);
    RETURN_IF_FAILED(VerifySameParameters(&coll, same->parameters()));
    Mlp differ = MakeMlp(rank == 0 ? 11 : 12);
    EXPECT_EQ(VerifySameParameters(&coll, differ->parameters()).code(),
              absl::StatusCode::kFailedPrecondition);
    // A permutation within one tensor keeps its plain sum but not the weighted one.
    auto p = torch::arange(10, torch::kFloat32);
    if (rank == 1) p = p.flip(0);
    EXPECT_EQ(VerifySameParameters(&coll, {p}).code(), absl::StatusCode::kFailedPrecondition);
    auto params = same->parameters();
    if (rank == 1) params.pop_back();
    EXPECT_EQ(VerifySameParameters(&coll, params).code(), absl::StatusCode::kFailedPrecondition);
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace dino::dist
