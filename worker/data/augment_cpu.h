// Fused CPU kernels of the multi-crop augmentation. MultiCropCpu is the CPU path of
// MultiCropAugmenter::Apply: each (view, sample) is one task that runs the whole chain on one
// image while it is in cache, straight from the uint8 image into its slot of the output tensor:
//   - ROI resampling: crop + resize + flip as separable 1-D passes (2 or 4 taps per axis); the same
//     arithmetic as grid_sample with align_corners false and border padding (bicubic A = −0.75,
//     taps clamped at the image edge);
//   - the colour jitter: the sample's ops in its order, one pass per op (hue: rgb → hsv → rgb);
//   - grayscale; the separable Gaussian blur with reflect padding, radius BlurRadius(σ) of the
//     sample's own σ; solarize and normalisation in one last pass.
// The per-op batch functions below run the same per-image kernels over a batch; augment_ops uses
// them for CPU tensors, and the tests hold them (and MultiCropCpu) equal to the tensor-op path.
// Written by hand because LibTorch's CPU grid_sample (bicubic), grouped convolutions and the
// tensor path's full-batch temporaries spend most of their time on index arithmetic, memory
// traffic and page faults that the per-image separable forms avoid. The inner loops that GCC does
// not vectorise by itself (the bicubic taps, the blur's tap sums, the hue) are written in SSE2
// where the target has it (every x86-64), with the same arithmetic as their scalar loops, which
// remain as tails and fallbacks. MultiCropCpu spreads its work over as many std::threads as
// LibTorch's intra-op count (at::get_num_threads), which take (view, sample) tasks from a shared
// counter. The per-op functions use at::parallel_for, which runs serially in this library: it is
// built without -fopenmp, so ATen's INTRA_OP_PARALLEL is not defined here.
//
// Thread-safety: stateless. Failure: none beyond LibTorch's (callers are inside TorchCall);
// inputs must be CPU tensors of the documented dtype (images are made contiguous here).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "worker/data/augment.h"

namespace dino::data {

struct CropBox;
struct JitterParams;
struct ViewParams;
class BufferPool;

// images: uint8 [C, H_b, W_b]; views: the sampled parameters of every view (augment_ops.h).
// Returns views.size() float tensors [B, C, size_v, size_v], normalised with `stats`, allocated
// from `pool` (recycled buffers) or, when it is null, by torch::empty.
std::vector<torch::Tensor> MultiCropCpu(const std::vector<torch::Tensor>& images,
                                        const std::vector<ViewParams>& views,
                                        const AugmentOptions& options,
                                        const NormalizationStats& stats, BufferPool* pool);

// canvas: uint8 [B, C, Hc, Wc]. Returns float [B, C, size, size] in [0, 1].
torch::Tensor ResizedCropsCpu(const torch::Tensor& canvas, const std::vector<CropBox>& boxes,
                              const std::vector<bool>& flip, int64_t size,
                              Interpolation interpolation);

// x: float [B, C, H, W], contiguous; samples with sigma[b] > 0 are blurred in place with a kernel
// of radius BlurRadius(sigma[b], H, W).
void GaussianBlurCpu(torch::Tensor& x, const std::vector<double>& sigma);

// x: float [B, C, H, W], contiguous; every sample with params.apply[b] gets its jitter ops in
// its order, in place (brightness, contrast, saturation, hue; the last two skipped for C = 1).
void ColorJitterCpu(torch::Tensor& x, const JitterParams& params);

}  // namespace dino::data
