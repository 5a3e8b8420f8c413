#include "worker/data/augment.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/data/augment_ops.h"
#include "worker/data/augment_pool.h"
#include "worker/dino/torch_status.h"

namespace dino::data {
namespace {

absl::Status ValidateView(const ViewOptions& v, absl::string_view name) {
  auto prob = [&](double p, absl::string_view what) -> absl::Status {
    if (!(p >= 0 && p <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".", what, " = ", p, " not in [0, 1]"));
    }
    return absl::OkStatus();
  };
  if (v.crop_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ".crop_size must be > 0"));
  }
  if (!(v.crop_scale_min > 0 && v.crop_scale_min <= v.crop_scale_max && v.crop_scale_max <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": crop scale range [", v.crop_scale_min,
                                                   ", ", v.crop_scale_max,
                                                   "] must satisfy 0 < min <= max <= 1"));
  }
  DINO_RETURN_IF_ERROR(prob(v.flip_prob, "flip_prob"));
  DINO_RETURN_IF_ERROR(prob(v.color_jitter_prob, "color_jitter_prob"));
  DINO_RETURN_IF_ERROR(prob(v.grayscale_prob, "grayscale_prob"));
  DINO_RETURN_IF_ERROR(prob(v.blur_prob, "blur_prob"));
  return prob(v.solarization_prob, "solarization_prob");
}

}  // namespace

ViewOptions DefaultGlobal2View() {
  ViewOptions v;
  v.blur_prob = spec::kJobSpecDefaults.augmentation.blur_prob_global2;
  v.solarization_prob = spec::kJobSpecDefaults.augmentation.solarization_prob;
  return v;
}

ViewOptions DefaultLocalView() {
  const spec::AugmentationSpecDefaults& a = spec::kJobSpecDefaults.augmentation;
  ViewOptions v;
  v.crop_size = a.local_crop_size;
  v.crop_scale_min = a.local_crop_scale_min;
  v.crop_scale_max = a.local_crop_scale_max;
  v.blur_prob = a.blur_prob_local;
  return v;
}

AugmentOptions AugmentOptions::ForResolution(int64_t resolution, int64_t n_local_crops) {
  const spec::AugmentationSpecDefaults& a = spec::kJobSpecDefaults.augmentation;
  AugmentOptions o;
  o.global1.crop_size = resolution;
  o.global2.crop_size = resolution;
  o.local.crop_size =
      std::max<int64_t>(8, std::llround(static_cast<double>(resolution * a.local_crop_size) /
                                        static_cast<double>(a.global_crop_size)));
  o.n_local_crops = n_local_crops;
  return o;
}

absl::Status AugmentOptions::Validate() const {
  DINO_RETURN_IF_ERROR(ValidateView(global1, "global1"));
  DINO_RETURN_IF_ERROR(ValidateView(global2, "global2"));
  DINO_RETURN_IF_ERROR(ValidateView(local, "local"));
  if (n_local_crops < 0) return absl::InvalidArgumentError("n_local_crops must be >= 0");
  if (!(ratio_min > 0 && ratio_min <= ratio_max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ratio range [", ratio_min, ", ", ratio_max, "] must satisfy 0 < min <= max"));
  }
  if (!(brightness >= 0 && brightness <= 1 && contrast >= 0 && contrast <= 1 && saturation >= 0 &&
        saturation <= 1)) {
    return absl::InvalidArgumentError("brightness, contrast and saturation must be in [0, 1]");
  }
  if (!(hue >= 0 && hue <= 0.5)) return absl::InvalidArgumentError("hue must be in [0, 0.5]");
  if (!(blur_sigma_min > 0 && blur_sigma_min <= blur_sigma_max)) {
    return absl::InvalidArgumentError(absl::StrCat("blur sigma range [", blur_sigma_min, ", ",
                                                   blur_sigma_max,
                                                   "] must satisfy 0 < min <= max"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MultiCropAugmenter> MultiCropAugmenter::Create(const AugmentOptions& options,
                                                              const NormalizationStats& stats,
                                                              int64_t channels) {
  DINO_RETURN_IF_ERROR(options.Validate());
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("channels must be 1 or 3, got ", channels));
  }
  if (static_cast<int64_t>(stats.mean.size()) != channels ||
      static_cast<int64_t>(stats.std.size()) != channels) {
    return absl::InvalidArgumentError(absl::StrCat("normalisation stats have ", stats.mean.size(),
                                                   " means and ", stats.std.size(), " stds for ",
                                                   channels, " channels"));
  }
  for (double s : stats.std) {
    if (!(s > 0)) return absl::InvalidArgumentError("normalisation std must be > 0");
  }
  return MultiCropAugmenter(options, stats, channels, BufferPool::Create(kMaxIdlePoolBytes));
}

absl::StatusOr<std::vector<torch::Tensor>> MultiCropAugmenter::Apply(
    const std::vector<torch::Tensor>& images, uint64_t seed, torch::Device device) const {
  if (images.empty()) return absl::InvalidArgumentError("Apply: empty batch");
  for (size_t b = 0; b < images.size(); ++b) {
    const auto& im = images[b];
    if (!im.defined() || im.dim() != 3 || im.size(0) != channels_ ||
        im.scalar_type() != torch::kUInt8 || im.size(1) == 0 || im.size(2) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Apply: image ", b, " is not a non-empty uint8 [", channels_, ", H, W]"));
    }
  }
  // All random parameters first, in a fixed order, so the result depends only on the seed.
  const std::vector<ViewParams> views = SampleViews(options_, images, seed);
  return TorchCallOr("multi-crop augmentation", [&] {
    return AugmentViews(images, views, options_, stats_, device, OpsPath::kAuto, pool_.get());
  });
}

}  // namespace dino::data
