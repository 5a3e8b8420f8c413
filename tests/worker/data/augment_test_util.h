// Inputs and options shared by the augmentation tests (augment_test.cc, augment_cpu_test.cc).
#ifndef DINO_TESTS_WORKER_DATA_AUGMENT_TEST_UTIL_H_
#define DINO_TESTS_WORKER_DATA_AUGMENT_TEST_UTIL_H_

#include <torch/torch.h>

#include <vector>

#include "worker/data/augment.h"

namespace dino::data::augment_testing {

// Normalisation that leaves [0, 1] values as they are.
inline NormalizationStats Identity(int64_t channels) {
  return {std::vector<double>(channels, 0.0), std::vector<double>(channels, 1.0)};
}

// n random uint8 [c, h, w] images from LibTorch's generator seeded with `seed`.
inline std::vector<torch::Tensor> RandomImages(int64_t n, int64_t c, int64_t h, int64_t w,
                                               int64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(torch::randint(0, 256, {c, h, w}, torch::kUInt8));
  return out;
}

// The images stacked as floats in [0, 1].
inline torch::Tensor ToFloat(const std::vector<torch::Tensor>& images) {
  return torch::stack(images).to(torch::kFloat32).div(255.0);
}

// Options where every crop is the full (square) image at the view size and nothing else happens.
inline AugmentOptions Plain(int64_t size) {
  AugmentOptions o;
  for (ViewOptions* v : {&o.global1, &o.global2, &o.local}) {
    *v = ViewOptions{size, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  }
  o.ratio_min = o.ratio_max = 1.0;
  return o;
}

// Four uint8 images of different sizes with `channels` channels, the same on every call.
inline std::vector<torch::Tensor> MixedSizeImages(int64_t channels) {
  torch::manual_seed(13);
  return {torch::randint(0, 256, {channels, 50, 70}, torch::kUInt8),
          torch::randint(0, 256, {channels, 64, 48}, torch::kUInt8),
          torch::randint(0, 256, {channels, 64, 70}, torch::kUInt8),
          torch::randint(0, 256, {channels, 40, 40}, torch::kUInt8)};
}

// 32-px views with 3 locals where grayscale, blur (sigma up to 2) and solarize all happen often.
inline AugmentOptions EveryOperationOften() {
  AugmentOptions o = AugmentOptions::ForResolution(32, /*n_local_crops=*/3);
  o.blur_sigma_max = 2.0;
  for (ViewOptions* v : {&o.global1, &o.global2, &o.local}) {
    v->grayscale_prob = 0.4;
    v->blur_prob = 0.7;
    v->solarization_prob = 0.4;
  }
  return o;
}

// Normalisation by a mean of 0.4 and a std of 0.3 in every channel.
inline NormalizationStats OffCentreStats(int64_t channels) {
  return {std::vector<double>(channels, 0.4), std::vector<double>(channels, 0.3)};
}

}  // namespace dino::data::augment_testing

#endif  // DINO_TESTS_WORKER_DATA_AUGMENT_TEST_UTIL_H_
