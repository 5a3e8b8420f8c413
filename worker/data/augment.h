// MultiCropAugmenter: DINO's multi-crop augmentation (docs/dino.md, "Augmentation"),
// computed for a whole batch at once as tensor ops that run the same on CPU and CUDA.
//
// For each view (global 1, global 2, then `n_local_crops` locals) and each sample:
//   RandomResizedCrop (torchvision's sampling of scale and log-ratio, 10 tries then a centre crop;
//   the crops of the whole batch are resampled at once, bicubic by default, without an
//   antialiasing filter like torchvision's tensor path: one affine grid + grid_sample on CUDA, the
//   equivalent separable ROI resampling on the CPU, see augment_cpu.h) → horizontal flip →
//   colour jitter with p (brightness, contrast, saturation, hue in a random order per sample, as
//   torchvision's ColorJitter) → grayscale → Gaussian blur (per-sample σ and kernel radius
//   ceil(3σ); one separable grouped convolution for the batch on CUDA) → solarize (x ≥ 0.5 →
//   1 − x) → normalise with the dataset stats. On the CPU each (view, sample) runs that whole chain
//   as one task of fused kernels (augment_cpu.h).
// Every probability belongs to a ViewOptions, so each view is configurable on its own.
// For 1-channel data, jitter reduces to brightness and contrast, and grayscale is a no-op.
//
// All random parameters come from a std::mt19937_64 seeded by the caller's 64-bit seed, so one
// seed always yields the same views (bit-identical on one machine and device type).
//
// On the CPU the views are written into recycled buffers (augment_pool.h): a batch's memory is
// reused once every tensor of an earlier batch of the same shapes is gone.
//
// Ownership: value type; copies share the buffer pool. Thread-safety: Apply is const and may run
// on many threads at once.
// Failure: Create returns INVALID_ARGUMENT for inconsistent options; Apply returns
// INVALID_ARGUMENT for bad input shapes and wraps LibTorch errors through TorchCall.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spec/defaults.h"
#include "worker/data/dataset.h"

namespace dino::data {

class BufferPool;

enum class Interpolation { kBilinear, kBicubic };

// One kind of view: its output size, crop sampling and the probability of each operation. The
// names are the job spec's (AugmentationSpec) without the view's prefix or suffix: crop_size is
// global_crop_size or local_crop_size, blur_prob is blur_prob_global1, _global2 or _local. The
// initial values are the job spec's defaults for the first global view (spec/defaults.h).
struct ViewOptions {
  int64_t crop_size = spec::kJobSpecDefaults.augmentation.global_crop_size;
  double crop_scale_min = spec::kJobSpecDefaults.augmentation.global_crop_scale_min;
  double crop_scale_max = spec::kJobSpecDefaults.augmentation.global_crop_scale_max;
  double flip_prob = spec::kJobSpecDefaults.augmentation.flip_prob;
  double color_jitter_prob = spec::kJobSpecDefaults.augmentation.color_jitter_prob;
  double grayscale_prob = spec::kJobSpecDefaults.augmentation.grayscale_prob;
  double blur_prob = spec::kJobSpecDefaults.augmentation.blur_prob_global1;
  double solarization_prob = 0.0;  // DINO solarizes the second global view only.
};

// The second global view and the local views as the job spec's defaults describe them.
ViewOptions DefaultGlobal2View();
ViewOptions DefaultLocalView();

// The initial values are the job spec's defaults (spec/defaults.h), so that AugmentOptions left
// alone augments as an empty job spec does.
struct AugmentOptions {
  ViewOptions global1;
  ViewOptions global2 = DefaultGlobal2View();
  ViewOptions local = DefaultLocalView();
  int64_t n_local_crops = spec::kJobSpecDefaults.augmentation.n_local_crops;

  // RandomResizedCrop aspect-ratio range (width / height).
  double ratio_min = 3.0 / 4.0;
  double ratio_max = 4.0 / 3.0;
  Interpolation interpolation = Interpolation::kBicubic;

  // ColorJitter strengths, as torchvision: factors uniform in [1-x, 1+x]; hue shift in [-h, h].
  double brightness = spec::kJobSpecDefaults.augmentation.brightness;
  double contrast = spec::kJobSpecDefaults.augmentation.contrast;
  double saturation = spec::kJobSpecDefaults.augmentation.saturation;
  double hue = spec::kJobSpecDefaults.augmentation.hue;

  // Gaussian blur σ range; each sample's kernel radius is ceil(3σ) (less than the view size). The
  // same range at every crop size.
  double blur_sigma_min = spec::kJobSpecDefaults.augmentation.blur_sigma_min;
  double blur_sigma_max = spec::kJobSpecDefaults.augmentation.blur_sigma_max;

  int64_t num_views() const { return 2 + n_local_crops; }
  const ViewOptions& view(int64_t v) const { return v == 0 ? global1 : v == 1 ? global2 : local; }

  // The defaults with the crop sizes scaled to images of `resolution` px (e.g. 28 for
  // Fashion-MNIST): global = resolution, local = max(8, round(resolution * local / global of the
  // defaults)) (12 at 28 px); the scales, ratios, probabilities and the blur σ range stay the
  // defaults'.
  static AugmentOptions ForResolution(int64_t resolution, int64_t n_local_crops = 6);

  absl::Status Validate() const;
};

class MultiCropAugmenter {
 public:
  // `channels` is the dataset's channel count (1 or 3); `stats` must have that many entries.
  static absl::StatusOr<MultiCropAugmenter> Create(const AugmentOptions& options,
                                                   const NormalizationStats& stats,
                                                   int64_t channels);

  // images: uint8 [C, H, W] tensors (sizes may differ) on the CPU. With `device` CUDA, the images
  // are padded into one uint8 canvas on the CPU, copied (pinned, non-blocking) and augmented on
  // the device. Returns num_views() float tensors [B, C, size, size], crops[0..1] global.
  absl::StatusOr<std::vector<torch::Tensor>> Apply(const std::vector<torch::Tensor>& images,
                                                   uint64_t seed,
                                                   torch::Device device = torch::kCPU) const;

  const AugmentOptions& options() const { return options_; }
  int64_t channels() const { return channels_; }

 private:
  // Idle view buffers kept for reuse on the CPU path (a few batches' worth).
  static constexpr size_t kMaxIdlePoolBytes = size_t{512} << 20;

  MultiCropAugmenter(AugmentOptions options, NormalizationStats stats, int64_t channels,
                     std::shared_ptr<BufferPool> pool)
      : options_(std::move(options)),
        stats_(std::move(stats)),
        channels_(channels),
        pool_(std::move(pool)) {}

  AugmentOptions options_;
  NormalizationStats stats_;
  int64_t channels_;
  std::shared_ptr<BufferPool> pool_;  // shared by copies; thread-safe
};

}  // namespace dino::data
