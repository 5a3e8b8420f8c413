// Batched augmentation kernels behind MultiCropAugmenter: each op works on a float batch
// [B, C, H, W] with values in [0, 1] and per-sample parameters, as a few tensor ops for the whole
// batch (no per-image loop over pixels), so they run unchanged on CPU and CUDA.
//
// Ownership: pure functions on tensors. Thread-safety: stateless (LibTorch ops only).
// Failure: they throw c10::Error on bad shapes; callers are inside a TorchCall seam.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "worker/data/augment.h"

namespace dino::data {

// A crop rectangle in pixels of the source image (edges, not centres).
struct CropBox {
  double top = 0;
  double left = 0;
  double height = 0;
  double width = 0;
};

// kAuto: the fused kernels of augment_cpu.h for CPU tensors, tensor ops elsewhere.
// kTensorOps: tensor ops everywhere (the CUDA path; tests compare it with the fused kernels).
enum class OpsPath { kAuto, kTensorOps };

// Uniform double in [0, 1) from 53 bits of the generator (the same on every platform).
double Uniform01(std::mt19937_64& rng);

// torchvision's RandomResizedCrop.get_params: 10 tries of area ~ U(scale) · H·W and
// log-aspect ~ U(log ratio), then a centre crop clamped to the ratio range.
CropBox SampleResizedCrop(int64_t height, int64_t width, double scale_min, double scale_max,
                          double ratio_min, double ratio_max, std::mt19937_64& rng);

// Pads uint8 [C, H_i, W_i] images into one uint8 canvas [B, C, Hmax, Wmax] at the top-left; the
// padding replicates each image's last row / column so that interpolation taps at an image edge
// read the edge (as a clamped resize does).
torch::Tensor PackCanvas(const std::vector<torch::Tensor>& images);

// Resamples box b of canvas sample b to size×size (flipped horizontally where flip[b]): one
// affine grid + grid_sample (align_corners false: half-pixel centres, like a resize; border
// padding), or the equivalent separable ROI resampling on the CPU. `canvas` is uint8
// [B, C, Hc, Wc]; returns float [B, C, size, size] in [0, 1].
torch::Tensor ResizedCrops(const torch::Tensor& canvas, const std::vector<CropBox>& boxes,
                           const std::vector<bool>& flip, int64_t size, Interpolation interpolation,
                           OpsPath path = OpsPath::kAuto);

// Luma (ITU-R 601-2: 0.299 R + 0.587 G + 0.114 B) of [B, 3, H, W] → [B, 1, H, W]; identity for
// one channel.
torch::Tensor Luma(const torch::Tensor& x);

// Colour jitter for the samples with apply[b]: op order[b][k] (0 brightness, 1 contrast,
// 2 saturation, 3 hue) at slot k with factor factors[b][op] (hue: shift in turns). For 1-channel
// input the saturation and hue slots are skipped. Returns a new tensor.
struct JitterParams {
  std::vector<bool> apply;
  std::vector<std::array<int, 4>> order;
  std::vector<std::array<double, 4>> factors;
};
torch::Tensor ColorJitter(const torch::Tensor& x, const JitterParams& params,
                          OpsPath path = OpsPath::kAuto);

// Samples with mask[b] become their luma repeated over the channels (no-op for 1 channel).
torch::Tensor RandomGrayscale(const torch::Tensor& x, const std::vector<bool>& mask);

// The Gaussian kernel radius of σ > 0 on an H×W image: ceil(3σ), at most min(H, W) − 1 (the
// reflect padding's limit).
int64_t BlurRadius(double sigma, int64_t height, int64_t width);

// Separable Gaussian blur with per-sample σ (σ <= 0: left as is), with reflect padding; each
// sample's kernel has its own radius BlurRadius(σ). On tensors: one grouped convolution per
// direction over the blurred samples, the kernels zero-padded to the largest radius.
torch::Tensor GaussianBlur(const torch::Tensor& x, const std::vector<double>& sigma,
                           OpsPath path = OpsPath::kAuto);

// Samples with mask[b] get x ≥ 0.5 → 1 − x.
torch::Tensor Solarize(const torch::Tensor& x, const std::vector<bool>& mask);

// Random parameters of one view for the whole batch.
class BufferPool;

struct ViewParams {
  std::vector<CropBox> boxes;
  std::vector<bool> flip;
  JitterParams jitter;
  std::vector<bool> gray;
  std::vector<double> sigma;  // 0: no blur
  std::vector<bool> solarize;
};

// Every random parameter of every view (options.num_views()) for `images`, drawn in a fixed order
// from a std::mt19937_64 seeded by `seed`.
std::vector<ViewParams> SampleViews(const AugmentOptions& options,
                                    const std::vector<torch::Tensor>& images, uint64_t seed);

// The views of `images` (uint8 [C, H_b, W_b] on the CPU) under `params`, normalised with `stats`:
// with kAuto on a CPU device, MultiCropCpu (augment_cpu.h; its outputs from `pool` when not null);
// otherwise the tensor ops above on `device` (the images packed into one canvas, copied pinned
// and non-blocking to CUDA).
std::vector<torch::Tensor> AugmentViews(const std::vector<torch::Tensor>& images,
                                        const std::vector<ViewParams>& params,
                                        const AugmentOptions& options,
                                        const NormalizationStats& stats, torch::Device device,
                                        OpsPath path = OpsPath::kAuto, BufferPool* pool = nullptr);

}  // namespace dino::data
