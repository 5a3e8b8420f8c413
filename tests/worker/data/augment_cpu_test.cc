// The fused CPU augmentation path (augment_cpu.cc) against the tensor-op path it replaces, and
// the recycled buffers its views come from.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>
#include <set>

#include "tests/worker/data/augment_test_util.h"
#include "worker/data/augment.h"
#include "worker/data/augment_ops.h"
#include "worker/data/augment_pool.h"

namespace dino::data {
namespace {

using augment_testing::Identity;
using augment_testing::Plain;
using augment_testing::RandomImages;
using augment_testing::ToFloat;

TEST(AugmentCpuTest, FusedCpuKernelsMatchTheTensorOpPath) {
  torch::manual_seed(12);
  std::vector<torch::Tensor> images = {torch::randint(0, 256, {3, 50, 70}, torch::kUInt8),
                                       torch::randint(0, 256, {3, 64, 48}, torch::kUInt8),
                                       torch::randint(0, 256, {3, 64, 70}, torch::kUInt8)};
  auto canvas = PackCanvas(images);
  std::mt19937_64 rng(3);
  for (Interpolation interp : {Interpolation::kBicubic, Interpolation::kBilinear}) {
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<CropBox> boxes;
      std::vector<bool> flip;
      for (const auto& im : images) {
        boxes.push_back(SampleResizedCrop(im.size(1), im.size(2), 0.05, 1.0, 0.75, 4.0 / 3, rng));
        flip.push_back(Uniform01(rng) < 0.5);
      }
      auto fused = ResizedCrops(canvas, boxes, flip, 23, interp, OpsPath::kAuto);
      auto tensor = ResizedCrops(canvas, boxes, flip, 23, interp, OpsPath::kTensorOps);
      EXPECT_LT((fused - tensor).abs().max().item<double>(), 2e-4);
    }
  }
  auto x = canvas.narrow(2, 0, 40).narrow(3, 0, 40).to(torch::kFloat32).div(255.0);
  auto blur_fused = GaussianBlur(x, {0.7, 0.0, 2.0}, OpsPath::kAuto);
  auto blur_tensor = GaussianBlur(x, {0.7, 0.0, 2.0}, OpsPath::kTensorOps);
  EXPECT_LT((blur_fused - blur_tensor).abs().max().item<double>(), 1e-5);
  // Each sample's kernel has its own radius (2 for σ 0.5), whatever the other σ of the batch.
  for (OpsPath path : {OpsPath::kAuto, OpsPath::kTensorOps}) {
    auto batch = GaussianBlur(x, {0.5, 2.0, 0.0}, path);
    auto alone = GaussianBlur(x.narrow(0, 0, 1), {0.5}, path);
    EXPECT_LT((batch[0] - alone[0]).abs().max().item<double>(), 1e-6);
    EXPECT_TRUE(torch::equal(batch[2], x[2]));
  }
  JitterParams p;
  p.apply = {true, true, true};
  p.order = {{{3, 0, 1, 2}}, {{0, 3, 1, 2}}, {{0, 1, 2, 3}}};
  p.factors = {{{1.1, 0.9, 1.2, 0.07}}, {{0.8, 1.3, 0.7, -0.1}}, {{1.0, 1.0, 1.0, 0.3}}};
  auto jitter_fused = ColorJitter(x, p, OpsPath::kAuto);
  auto jitter_tensor = ColorJitter(x, p, OpsPath::kTensorOps);
  EXPECT_LT((jitter_fused - jitter_tensor).abs().max().item<double>(), 1e-5);
  // 35 pixels: the hue's four-at-a-time loop and its one-at-a-time tail.
  auto odd = x.narrow(2, 0, 7).narrow(3, 0, 5).contiguous();
  EXPECT_LT((ColorJitter(odd, p, OpsPath::kAuto) - ColorJitter(odd, p, OpsPath::kTensorOps))
                .abs()
                .max()
                .item<double>(),
            1e-5);
}

// The whole CPU pipeline (one task per view and sample, MultiCropCpu) computes what the tensor
// ops compute, for RGB and grey images of different sizes and every operation switched on often.
TEST(AugmentCpuTest, FusedCpuPipelineMatchesTheTensorOpPath) {
  for (int64_t channels : {3, 1}) {
    const std::vector<torch::Tensor> images = augment_testing::MixedSizeImages(channels);
    const AugmentOptions o = augment_testing::EveryOperationOften();
    const NormalizationStats stats = augment_testing::OffCentreStats(channels);
    for (uint64_t seed = 0; seed < 4; ++seed) {
      const auto views = SampleViews(o, images, seed);
      auto fused = AugmentViews(images, views, o, stats, torch::kCPU, OpsPath::kAuto);
      auto tensor = AugmentViews(images, views, o, stats, torch::kCPU, OpsPath::kTensorOps);
      ASSERT_EQ(fused.size(), tensor.size());
      for (size_t v = 0; v < fused.size(); ++v) {
        ASSERT_EQ(fused[v].sizes(), tensor[v].sizes());
        EXPECT_LT((fused[v] - tensor[v]).abs().max().item<double>(), 2e-4)
            << "channels " << channels << " seed " << seed << " view " << v;
      }
    }
  }
}

// CPU views come from recycled buffers: a later batch reuses the memory of dropped batches, never
// of ones still held, and the pool (and the buffers) outlive whoever created them.
TEST(AugmentCpuTest, CpuViewsReuseOnlyTheBuffersOfDroppedBatches) {
  auto aug = MultiCropAugmenter::Create(AugmentOptions::ForResolution(24, 2), Identity(3), 3);
  ASSERT_TRUE(aug.ok());
  auto images = RandomImages(4, 3, 30, 30, 2);
  std::vector<torch::Tensor> expected;
  std::set<void*> dropped;
  {
    auto a = aug->Apply(images, 1);
    ASSERT_TRUE(a.ok());
    for (const auto& x : *a) expected.push_back(x.clone());
    auto held = aug->Apply(images, 2);
    ASSERT_TRUE(held.ok());
    for (size_t v = 0; v < a->size(); ++v) {
      EXPECT_NE((*held)[v].data_ptr(), (*a)[v].data_ptr());
      EXPECT_TRUE(torch::equal((*a)[v], expected[v]));
    }
    for (size_t v = 0; v < a->size(); ++v) {
      dropped.insert((*a)[v].data_ptr());
      dropped.insert((*held)[v].data_ptr());
    }
  }
  auto b = aug->Apply(images, 1);
  ASSERT_TRUE(b.ok());
  for (size_t v = 0; v < b->size(); ++v) {
    EXPECT_TRUE(torch::equal((*b)[v], expected[v]));
    EXPECT_EQ(dropped.count((*b)[v].data_ptr()), 1u) << "view " << v << " got fresh memory";
  }

  auto pool = BufferPool::Create(/*max_idle_bytes=*/1024);
  torch::Tensor t = pool->Empty({10});
  void* first = t.data_ptr();
  t = torch::Tensor();
  EXPECT_EQ(pool->idle_bytes(), 64u);
  t = pool->Empty({2, 5});
  EXPECT_EQ(t.data_ptr(), first);
  EXPECT_EQ(pool->idle_bytes(), 0u);
  pool->Empty({1000});  // over the idle limit: freed when dropped, not kept
  EXPECT_EQ(pool->idle_bytes(), 0u);
  pool.reset();  // t keeps the pool alive
  t.fill_(2.0f);
  EXPECT_EQ(t.sum().item<float>(), 20.0f);
}

}  // namespace
}  // namespace dino::data
