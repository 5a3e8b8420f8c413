// The CUDA augmentation path (one padded uint8 canvas copied to the device, then grid_sample,
// grouped blur convolutions and the colour ops as tensor ops there) computes what the CPU path
// computes from the same seed, to the same 2e-4 that bounds the fused CPU kernels against the
// tensor ops (augment_cpu_test.cc). Skipped without a CUDA device; scripts/gpu-check runs it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tests/cuda_skip.h"
#include "tests/worker/data/augment_test_util.h"
#include "worker/data/augment.h"

namespace dino::data {
namespace {

// RGB and grey images of different sizes, every operation switched on often, through the public
// Apply on both devices.
TEST(AugmentCudaTest, CudaViewsMatchTheCpuViewsForTheSameSeed) {
  DINO_SKIP_WITHOUT_CUDA();
  const torch::Device cuda(torch::kCUDA, 0);
  for (int64_t channels : {3, 1}) {
    const std::vector<torch::Tensor> images = augment_testing::MixedSizeImages(channels);
    const AugmentOptions o = augment_testing::EveryOperationOften();
    const NormalizationStats stats = augment_testing::OffCentreStats(channels);
    auto augmenter = MultiCropAugmenter::Create(o, stats, channels);
    ASSERT_TRUE(augmenter.ok()) << augmenter.status();
    for (uint64_t seed = 0; seed < 4; ++seed) {
      auto on_cpu = augmenter->Apply(images, seed);
      auto on_gpu = augmenter->Apply(images, seed, cuda);
      ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
      ASSERT_TRUE(on_gpu.ok()) << on_gpu.status();
      ASSERT_EQ(on_cpu->size(), on_gpu->size());
      for (size_t v = 0; v < on_cpu->size(); ++v) {
        const torch::Tensor& gpu_view = (*on_gpu)[v];
        EXPECT_TRUE(gpu_view.device().is_cuda()) << "view " << v << " left the device";
        ASSERT_EQ(gpu_view.sizes(), (*on_cpu)[v].sizes());
        EXPECT_LT((gpu_view.cpu() - (*on_cpu)[v]).abs().max().item<double>(), 2e-4)
            << "channels " << channels << " seed " << seed << " view " << v;
      }
    }
  }
}

}  // namespace
}  // namespace dino::data
