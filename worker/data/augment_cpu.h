// Fused CPU kernels for the three costliest augmentation steps, used by augment_ops when the batch
// is on the CPU (the tensor-op versions in augment_ops stay the path on CUDA, and the tests hold
// the two paths equal):
//   - ROI resampling: crop + resize + flip of every sample, as separable 1-D passes (2 or 4 taps
//     per axis) straight from the uint8 canvas; the same arithmetic as grid_sample with
//     align_corners false and border padding (bicubic A = −0.75, taps clamped at the edge);
//   - the per-sample separable Gaussian blur with reflect padding;
//   - the colour jitter: each sample's ops in its order, one pass per op over the image while it
//     is in cache (the hue as rgb → hsv → rgb per pixel).
// Written by hand because LibTorch's CPU grid_sample (bicubic) and grouped convolutions spend most
// of their time on index arithmetic and memory traffic that the separable forms avoid; each
// kernel runs in parallel over (sample, channel) with at::parallel_for.
//
// Thread-safety: stateless. Failure: none beyond LibTorch's (callers are inside TorchCall);
// inputs must be contiguous CPU tensors of the documented dtype.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "worker/data/augment.h"

namespace dino::data {

struct CropBox;
struct JitterParams;

// canvas: uint8 [B, C, Hc, Wc]. Returns float [B, C, size, size] in [0, 1].
torch::Tensor ResizedCropsCpu(const torch::Tensor& canvas, const std::vector<CropBox>& boxes,
                              const std::vector<bool>& flip, int64_t size,
                              Interpolation interpolation);

// x: float [B, C, H, W]; samples with sigma[b] > 0 are blurred in place with a kernel of radius
// `radius` (shared by the batch, as the tensor path's one convolution).
void GaussianBlurCpu(torch::Tensor& x, const std::vector<double>& sigma, int64_t radius);

// x: float [B, C, H, W], contiguous; every sample with params.apply[b] gets its jitter ops in
// its order, in place (brightness, contrast, saturation, hue; the last two skipped for C = 1).
void ColorJitterCpu(torch::Tensor& x, const JitterParams& params);

}  // namespace dino::data
