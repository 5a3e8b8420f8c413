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
  if (v.size <= 0) return absl::InvalidArgumentError(absl::StrCat(name, ".size must be > 0"));
  if (!(v.scale_min > 0 && v.scale_min <= v.scale_max && v.scale_max <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": scale range [", v.scale_min, ", ",
                                                   v.scale_max,
                                                   "] must satisfy 0 < min <= max <= 1"));
  }
  DINO_RETURN_IF_ERROR(prob(v.flip_p, "flip_p"));
  DINO_RETURN_IF_ERROR(prob(v.jitter_p, "jitter_p"));
  DINO_RETURN_IF_ERROR(prob(v.grayscale_p, "grayscale_p"));
  DINO_RETURN_IF_ERROR(prob(v.blur_p, "blur_p"));
  return prob(v.solarize_p, "solarize_p");
}

}  // namespace

ViewOptions DefaultGlobal2View() {
  ViewOptions v;
  v.blur_p = spec::kJobSpecDefaults.augmentation.blur_prob_global2;
  v.solarize_p = spec::kJobSpecDefaults.augmentation.solarization_prob;
  return v;
}

ViewOptions DefaultLocalView() {
  const spec::AugmentationSpecDefaults& a = spec::kJobSpecDefaults.augmentation;
  ViewOptions v;
  v.size = a.local_crop_size;
  v.scale_min = a.local_crop_scale_min;
  v.scale_max = a.local_crop_scale_max;
  v.blur_p = a.blur_prob_local;
  return v;
}

AugmentOptions AugmentOptions::ForResolution(int64_t resolution, int64_t num_local) {
  const spec::AugmentationSpecDefaults& a = spec::kJobSpecDefaults.augmentation;
  AugmentOptions o;
  o.global1.size = resolution;
  o.global2.size = resolution;
  o.local.size = std::max<int64_t>(
      8, std::llround(static_cast<double>(resolution * a.local_crop_size) /
                      static_cast<double>(a.global_crop_size)));
  o.num_local = num_local;
  return o;
}

absl::Status AugmentOptions::Validate() const {
  DINO_RETURN_IF_ERROR(ValidateView(global1, "global1"));
  DINO_RETURN_IF_ERROR(ValidateView(global2, "global2"));
  DINO_RETURN_IF_ERROR(ValidateView(local, "local"));
  if (num_local < 0) return absl::InvalidArgumentError("num_local must be >= 0");
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
