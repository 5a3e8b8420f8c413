// The training step on a CUDA device: fp32 on the GPU computes what the CPU computes, and bf16
// autocast (what GPU jobs run, optim.bf16) stays within a stated distance of the fp32 step while
// really running in bf16. Every test skips without a CUDA device (CI has none); scripts/gpu-check
// runs them on one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tests/cuda_skip.h"
#include "tests/worker/dino/test_util.h"
#include "worker/dino/collectives.h"
#include "worker/dino/trainer.h"

namespace dino {
namespace {

using testing::TensorDict;

// A run of `steps` steps on fixed crops: the loss of each and the state after the last.
struct TrainedRun {
  std::vector<double> losses;
  TensorDict state;  // CPU float copies
};

TrainedRun Train(TrainConfig config, int64_t steps) {
  LocalCollectives collectives;
  LocalGradientSync sync;
  auto trainer = Trainer::Create(config, &collectives, &sync);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  TrainedRun run;
  if (!trainer.ok()) return run;
  for (int64_t i = 0; i < steps; ++i) {
    auto r = (*trainer)->Step(testing::MakeCrops(config, i));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return run;
    run.losses.push_back(r->loss);
  }
  for (auto& [name, t] : testing::TrainerState(**trainer)) {
    run.state[name] = t.detach().to(torch::kCPU, torch::kFloat);
  }
  return run;
}

// Largest difference of any tensor between two states, relative to the larger magnitude of the
// pair (floored at 1 so that near-zero entries compare absolutely).
double MaxStateDiff(const TensorDict& a, const TensorDict& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end()) return std::numeric_limits<double>::infinity();
    m = std::max(m, testing::MaxAbsDiff(t, it->second));
  }
  return m;
}

TrainConfig GpuConfig(bool bf16) {
  TrainConfig c = testing::TinyConfig();
  c.device = "cuda:0";
  c.bf16 = bf16;
  return c;
}

constexpr int64_t kSteps = 4;

// fp32 on CUDA against fp32 on the CPU. cuDNN may run the patch convolution in TF32 (LibTorch's
// default for convolutions), so the bound is TF32's precision rather than fp32's.
TEST(GpuTrainStepTest, Fp32StepOnCudaMatchesTheCpuStep) {
  DINO_SKIP_WITHOUT_CUDA();
  TrainConfig cpu = testing::TinyConfig();
  const TrainedRun on_cpu = Train(cpu, kSteps);
  const TrainedRun on_gpu = Train(GpuConfig(/*bf16=*/false), kSteps);
  ASSERT_EQ(on_cpu.losses.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(on_gpu.losses.size(), static_cast<size_t>(kSteps));
  for (int64_t i = 0; i < kSteps; ++i) {
    EXPECT_NEAR(on_gpu.losses[i], on_cpu.losses[i], 2e-3 * std::abs(on_cpu.losses[i]))
        << "step " << i;
  }
  EXPECT_LT(MaxStateDiff(on_gpu.state, on_cpu.state), 2e-3);
}

// bf16 autocast against fp32, both on CUDA. bf16 keeps 8 bits of mantissa (relative error
// 2^-8 = 0.4% per rounding), so each step's loss is within 2% of the fp32 loss; AdamW moves each
// parameter by at most about lr per step whatever the gradient's rounding, so after 4 steps at
// lr 0.01 the weights are within 0.05 of each other. The runs must also differ (by more than
// 1e-6 in the loss): otherwise autocast was not on and the comparison proves nothing.
TEST(GpuTrainStepTest, Bf16AutocastStepStaysCloseToTheFp32Step) {
  DINO_SKIP_WITHOUT_CUDA();
  const TrainedRun fp32 = Train(GpuConfig(/*bf16=*/false), kSteps);
  const TrainedRun bf16 = Train(GpuConfig(/*bf16=*/true), kSteps);
  ASSERT_EQ(fp32.losses.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(bf16.losses.size(), static_cast<size_t>(kSteps));
  double largest_loss_gap = 0;
  for (int64_t i = 0; i < kSteps; ++i) {
    ASSERT_TRUE(std::isfinite(bf16.losses[i])) << "step " << i;
    EXPECT_NEAR(bf16.losses[i], fp32.losses[i], 0.02 * std::abs(fp32.losses[i])) << "step " << i;
    largest_loss_gap = std::max(largest_loss_gap, std::abs(bf16.losses[i] - fp32.losses[i]));
  }
  EXPECT_GT(largest_loss_gap, 1e-6) << "bf16 and fp32 gave the same losses: autocast was off";
  EXPECT_LT(MaxStateDiff(bf16.state, fp32.state), 0.05);
}

// The same bf16 run twice gives the same losses (to 1e-4 relative: cuDNN's backward kernels may
// sum in another order): the GPU step is repeatable from a seed.
TEST(GpuTrainStepTest, Bf16RunsRepeatFromTheSeed) {
  DINO_SKIP_WITHOUT_CUDA();
  const TrainedRun first = Train(GpuConfig(/*bf16=*/true), 2);
  const TrainedRun second = Train(GpuConfig(/*bf16=*/true), 2);
  ASSERT_EQ(first.losses.size(), 2u);
  ASSERT_EQ(second.losses.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(first.losses[i], second.losses[i], 1e-4 * std::abs(first.losses[i]));
  }
}

}  // namespace
}  // namespace dino
