// Multi-crop augmentation: shapes and ranges, per-view probabilities measured over many samples,
// the identity crop, blur σ→0, the colour operations against direct formulas, 1-channel rules.
#include "worker/data/augment.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "tests/worker/data/augment_test_util.h"
#include "worker/data/augment_ops.h"

namespace dino::data {
namespace {

namespace F = torch::nn::functional;

using augment_testing::Identity;
using augment_testing::Plain;
using augment_testing::RandomImages;
using augment_testing::ToFloat;

TEST(AugmentTest, ShapesAndRangesForRgbAndGray) {
  for (int64_t channels : {3, 1}) {
    AugmentOptions o = AugmentOptions::ForResolution(32, /*n_local_crops=*/4);
    EXPECT_EQ(o.local.crop_size, 14);
    NormalizationStats stats{std::vector<double>(channels, 0.5),
                             std::vector<double>(channels, 0.25)};
    auto aug = MultiCropAugmenter::Create(o, stats, channels);
    ASSERT_TRUE(aug.ok()) << aug.status();
    auto images = RandomImages(6, channels, 40, 48, 1);
    auto crops = aug->Apply(images, 123);
    ASSERT_TRUE(crops.ok()) << crops.status();
    ASSERT_EQ(crops->size(), 6u);
    for (size_t v = 0; v < crops->size(); ++v) {
      const int64_t s = v < 2 ? 32 : 14;
      const auto& x = (*crops)[v];
      EXPECT_EQ(x.sizes(), (std::vector<int64_t>{6, channels, s, s}));
      EXPECT_EQ(x.scalar_type(), torch::kFloat32);
      EXPECT_TRUE(x.isfinite().all().item<bool>());
      auto pixels = x * 0.25 + 0.5;  // undo the normalisation
      EXPECT_GE(pixels.min().item<double>(), -1e-5);
      EXPECT_LE(pixels.max().item<double>(), 1 + 1e-5);
    }
  }
  // The Fashion-MNIST configuration: 2 global crops of 28 and 6 local crops of 12.
  AugmentOptions fm = AugmentOptions::ForResolution(28);
  EXPECT_EQ(fm.global1.crop_size, 28);
  EXPECT_EQ(fm.local.crop_size, 12);
  EXPECT_EQ(fm.n_local_crops, 6);
}

TEST(AugmentTest, SameSeedSameViewsOtherSeedOtherViews) {
  auto aug = MultiCropAugmenter::Create(AugmentOptions::ForResolution(24, 2), Identity(3), 3);
  ASSERT_TRUE(aug.ok());
  auto images = RandomImages(4, 3, 30, 30, 2);
  auto a = aug->Apply(images, 5), b = aug->Apply(images, 5), c = aug->Apply(images, 6);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  for (size_t v = 0; v < a->size(); ++v) {
    EXPECT_TRUE(torch::equal((*a)[v], (*b)[v]));
    EXPECT_FALSE(torch::equal((*a)[v], (*c)[v]));
  }
}

TEST(AugmentTest, FullImageCropAtScaleOneReproducesTheResizedInput) {
  auto images = RandomImages(3, 3, 40, 40, 3);
  for (Interpolation interp : {Interpolation::kBicubic, Interpolation::kBilinear}) {
    AugmentOptions o = Plain(24);
    o.interpolation = interp;
    o.n_local_crops = 1;
    auto aug = MultiCropAugmenter::Create(o, Identity(3), 3);
    ASSERT_TRUE(aug.ok());
    auto crops = aug->Apply(images, 9);
    ASSERT_TRUE(crops.ok());
    auto options =
        F::InterpolateFuncOptions().size(std::vector<int64_t>{24, 24}).align_corners(false);
    if (interp == Interpolation::kBicubic) {
      options.mode(torch::kBicubic);
    } else {
      options.mode(torch::kBilinear);
    }
    auto expected = F::interpolate(ToFloat(images), options).clamp(0, 1);
    for (const auto& x : *crops) {
      EXPECT_LT((x - expected).abs().max().item<double>(), 1e-4);
    }
  }
  // At the native size the crop is exactly the image.
  auto aug = MultiCropAugmenter::Create(Plain(40), Identity(3), 3);
  auto same = aug->Apply(images, 1);
  ASSERT_TRUE(same.ok());
  EXPECT_LT(((*same)[0] - ToFloat(images)).abs().max().item<double>(), 1e-5);
}

TEST(AugmentTest, CropsOfDifferentSizedImagesInOneBatch) {
  // A 20x30 image padded into a 40x40 canvas: its full crop must equal its own resize.
  torch::manual_seed(4);
  std::vector<torch::Tensor> images = {torch::randint(0, 256, {3, 20, 30}, torch::kUInt8),
                                       torch::randint(0, 256, {3, 40, 40}, torch::kUInt8)};
  auto canvas = PackCanvas(images);
  EXPECT_EQ(canvas.sizes(), (std::vector<int64_t>{2, 3, 40, 40}));
  std::vector<CropBox> boxes = {{0, 0, 20, 30}, {0, 0, 40, 40}};
  for (OpsPath path : {OpsPath::kAuto, OpsPath::kTensorOps}) {
    auto out = ResizedCrops(canvas, boxes, {false, false}, 16, Interpolation::kBilinear, path);
    auto expected = F::interpolate(images[0].unsqueeze(0).to(torch::kFloat32).div(255.0),
                                   F::InterpolateFuncOptions()
                                       .size(std::vector<int64_t>{16, 16})
                                       .mode(torch::kBilinear)
                                       .align_corners(false));
    EXPECT_LT((out[0] - expected[0]).abs().max().item<double>(), 1e-4);
  }
}

// The fused CPU kernels compute what the tensor-op path (the CUDA path) computes.
TEST(AugmentTest, RandomResizedCropSamplingFollowsTorchvision) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000; ++i) {
    CropBox b = SampleResizedCrop(100, 200, 0.05, 0.4, 3.0 / 4, 4.0 / 3, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, 100);
    ASSERT_LE(b.left + b.width, 200);
    const double area = b.height * b.width / 20000.0;
    EXPECT_GT(area, 0.04);  // rounding of w, h moves the area slightly
    EXPECT_LT(area, 0.42);
    EXPECT_GT(b.width / b.height, 0.70);
    EXPECT_LT(b.width / b.height, 1.42);
  }
  // Impossible ratio: the centre crop fallback clamps the ratio into range.
  CropBox b = SampleResizedCrop(10, 100, 1.0, 1.0, 1.0, 1.0, rng);
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.width, 10);
  EXPECT_EQ(b.left, 45);
}

// Fraction of samples of view `v` for which `changed` holds, over many seeds.
template <typename Pred>
double MeasuredRate(const MultiCropAugmenter& aug, const std::vector<torch::Tensor>& images,
                    int64_t view, int seeds, Pred changed) {
  int64_t hits = 0, total = 0;
  auto x = ToFloat(images);
  for (int s = 0; s < seeds; ++s) {
    auto crops = aug.Apply(images, 1000 + s);
    EXPECT_TRUE(crops.ok());
    for (int64_t b = 0; b < x.size(0); ++b) {
      hits += changed((*crops)[view][b], x[b]) ? 1 : 0;
      ++total;
    }
  }
  return static_cast<double>(hits) / static_cast<double>(total);
}

TEST(AugmentTest, FlipAndSolarizeProbabilitiesPerView) {
  auto images = RandomImages(50, 3, 16, 16, 5);
  AugmentOptions o = Plain(16);
  o.n_local_crops = 1;
  o.global1.flip_prob = 0.5;
  o.global2.flip_prob = 0.1;
  o.global2.solarization_prob = 0.2;
  o.local.flip_prob = 0.9;
  auto aug = MultiCropAugmenter::Create(o, Identity(3), 3);
  ASSERT_TRUE(aug.ok());
  auto flipped = [](const torch::Tensor& y, const torch::Tensor& x) {
    const bool is_flip = (y - x.flip({2})).abs().max().item<double>() < 1e-5;
    const bool is_same = (y - x).abs().max().item<double>() < 1e-5;
    EXPECT_TRUE(is_flip != is_same);
    return is_flip;
  };
  // 40 seeds x 50 samples = 2000 draws per view: 4 standard deviations <= 0.045.
  EXPECT_NEAR(MeasuredRate(*aug, images, 0, 40, flipped), 0.5, 0.045);
  EXPECT_NEAR(MeasuredRate(*aug, images, 2, 40, flipped), 0.9, 0.03);
  auto solarized = [](const torch::Tensor& y, const torch::Tensor& x) {
    auto xs = torch::where(x >= 0.5, 1.0 - x, x);
    const bool is_sol = ((y - xs).abs().max().item<double>() < 1e-5 ||
                         (y - xs.flip({2})).abs().max().item<double>() < 1e-5);
    return is_sol;
  };
  EXPECT_NEAR(MeasuredRate(*aug, images, 1, 40, solarized), 0.2, 0.04);
  EXPECT_EQ(MeasuredRate(*aug, images, 0, 5, solarized), 0.0);  // global 1 never solarizes
}

TEST(AugmentTest, BlurWithTinySigmaIsIdentityAndIsPerSample) {
  auto x = ToFloat(RandomImages(3, 3, 20, 20, 6));
  auto same = GaussianBlur(x, {1e-3, 1e-3, 1e-3});
  EXPECT_LT((same - x).abs().max().item<double>(), 1e-6);
  auto mixed = GaussianBlur(x, {0.0, 1.5, 1e-3});
  EXPECT_TRUE(torch::equal(mixed[0], x[0]));
  EXPECT_LT((mixed[2] - x[2]).abs().max().item<double>(), 1e-6);
  // Sample 1 against the direct 2-D Gaussian of its own σ (radius 5 = ceil(3 * 1.5)).
  auto t = torch::arange(-5, 6, torch::kFloat64);
  auto g = torch::exp(-t * t / (2 * 1.5 * 1.5));
  g = (g / g.sum()).to(torch::kFloat32);
  auto k2 = torch::outer(g, g).expand({3, 1, 11, 11});
  auto padded = F::pad(x[1].unsqueeze(0), F::PadFuncOptions({5, 5, 5, 5}).mode(torch::kReflect));
  auto expected = F::conv2d(padded, k2, F::Conv2dFuncOptions().groups(3));
  EXPECT_LT((mixed[1] - expected[0]).abs().max().item<double>(), 1e-5);
  EXPECT_GT((mixed[1] - x[1]).abs().max().item<double>(), 0.05);
}

TEST(AugmentTest, ColorJitterOpsMatchTheirFormulasInTheSampledOrder) {
  auto x = ToFloat(RandomImages(4, 3, 8, 8, 7));
  JitterParams p;
  p.apply = {true, true, true, false};
  p.order = {{{0, 1, 2, 3}}, {{3, 2, 1, 0}}, {{1, 0, 3, 2}}, {{0, 1, 2, 3}}};
  p.factors = {{{1.3, 0.7, 1.1, 0.05}},
               {{0.8, 1.2, 0.9, -0.08}},
               {{1.0, 1.4, 0.6, 0.1}},
               {{1.3, 0.7, 1.1, 0.05}}};
  auto out = ColorJitter(x, p);
  EXPECT_TRUE(torch::equal(out[3], x[3]));
  for (int64_t b = 0; b < 3; ++b) {
    // The batched result of each sample equals jittering it alone.
    JitterParams one{{true}, {p.order[b]}, {p.factors[b]}};
    auto alone = ColorJitter(x[b].unsqueeze(0), one);
    EXPECT_LT((out[b] - alone[0]).abs().max().item<double>(), 1e-6);
  }
  // Brightness alone: x * f clamped; contrast alone: blend with the mean luma.
  JitterParams bright{{true}, {{{0, 1, 2, 3}}}, {{{1.3, 1.0, 1.0, 0.0}}}};
  auto b1 = ColorJitter(x.narrow(0, 0, 1), bright);
  EXPECT_LT((b1[0] - (x[0] * 1.3).clamp(0, 1)).abs().max().item<double>(), 1e-6);
  JitterParams contrast{{true}, {{{1, 0, 2, 3}}}, {{{1.0, 0.5, 1.0, 0.0}}}};
  auto c1 = ColorJitter(x.narrow(0, 0, 1), contrast);
  auto mean = Luma(x.narrow(0, 0, 1)).mean();
  EXPECT_LT((c1[0] - (0.5 * x[0] + 0.5 * mean).clamp(0, 1)).abs().max().item<double>(), 1e-5);
  // Hue 0 is the identity (rgb → hsv → rgb); a hue shift of 1/3 turns pure red into green.
  JitterParams hue0{{true}, {{{3, 0, 1, 2}}}, {{{1.0, 1.0, 1.0, 0.0}}}};
  EXPECT_LT((ColorJitter(x.narrow(0, 0, 1), hue0)[0] - x[0]).abs().max().item<double>(), 1e-5);
  auto red = torch::zeros({1, 3, 2, 2});
  red.select(1, 0).fill_(1.0);
  JitterParams third{{true}, {{{3, 0, 1, 2}}}, {{{1.0, 1.0, 1.0, 1.0 / 3}}}};
  auto green = ColorJitter(red, third);
  EXPECT_NEAR(green[0][0].max().item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(green[0][1].min().item<double>(), 1.0, 1e-5);
}

TEST(AugmentTest, OneChannelJitterIsBrightnessAndContrastOnlyAndGrayscaleIsNoOp) {
  auto images = RandomImages(8, 1, 12, 12, 8);
  AugmentOptions o = Plain(12);
  o.n_local_crops = 0;
  o.global1.color_jitter_prob = 1.0;
  o.global1.grayscale_prob = 1.0;
  o.brightness = 0.0;
  o.contrast = 0.0;
  o.saturation = 1.0;
  o.hue = 0.5;
  auto aug = MultiCropAugmenter::Create(o, Identity(1), 1);
  ASSERT_TRUE(aug.ok());
  auto crops = aug->Apply(images, 3);
  ASSERT_TRUE(crops.ok());
  EXPECT_LT(((*crops)[0] - ToFloat(images)).abs().max().item<double>(), 1e-5);
  o.brightness = 0.4;
  auto bright = MultiCropAugmenter::Create(o, Identity(1), 1);
  auto changed = bright->Apply(images, 3);
  EXPECT_GT(((*changed)[0] - ToFloat(images)).abs().max().item<double>(), 1e-3);
  // RGB grayscale with p 1 makes every channel the luma.
  auto rgb = ToFloat(RandomImages(2, 3, 6, 6, 9));
  auto gray = RandomGrayscale(rgb, {true, false});
  EXPECT_TRUE(torch::equal(gray[0][0], gray[0][2]));
  EXPECT_LT((gray[0][0] - Luma(rgb)[0][0]).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(torch::equal(gray[1], rgb[1]));
}

TEST(AugmentTest, NormalisesWithTheDatasetStats) {
  auto images = RandomImages(2, 3, 10, 10, 10);
  NormalizationStats stats{{0.1, 0.2, 0.3}, {0.5, 0.25, 2.0}};
  auto aug = MultiCropAugmenter::Create(Plain(10), stats, 3);
  auto crops = aug->Apply(images, 0);
  ASSERT_TRUE(crops.ok());
  auto mean = torch::tensor({0.1, 0.2, 0.3}).view({1, 3, 1, 1});
  auto std = torch::tensor({0.5, 0.25, 2.0}).view({1, 3, 1, 1});
  EXPECT_LT(((*crops)[0] - (ToFloat(images) - mean) / std).abs().max().item<double>(), 1e-4);
}

TEST(AugmentTest, RejectsBadOptionsAndInputs) {
  AugmentOptions o;
  o.local.crop_scale_min = 0.5;
  o.local.crop_scale_max = 0.4;
  EXPECT_EQ(MultiCropAugmenter::Create(o, Identity(3), 3).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = AugmentOptions();
  o.global2.solarization_prob = 1.5;
  EXPECT_EQ(MultiCropAugmenter::Create(o, Identity(3), 3).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MultiCropAugmenter::Create(AugmentOptions(), Identity(1), 3).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto aug = MultiCropAugmenter::Create(Plain(8), Identity(3), 3);
  ASSERT_TRUE(aug.ok());
  EXPECT_EQ(aug->Apply({}, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(aug->Apply({torch::zeros({1, 8, 8}, torch::kUInt8)}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dino::data
