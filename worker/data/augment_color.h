// The per-image colour kernels of the CPU augmentation path (augment_cpu.h): colour jitter and
// grayscale on one float image [C, plane] with values in [0, 1], in place, with the tensor path's
// arithmetic (augment_ops.h: ColorJitter, RandomGrayscale). The hue runs four pixels at a time in
// SSE2 where the target has it (every x86-64), else one at a time.
//
// Thread-safety: stateless. Failure: none; pointers must cover [C, plane] floats.
#pragma once

#include <array>
#include <cstdint>

namespace dino::data {

// One sample's jitter ops in its order (0 brightness, 1 contrast, 2 saturation, 3 hue, with
// factors[op]; hue: a shift in turns). C = 1: brightness and contrast only.
void JitterImageCpu(float* img, int64_t channels, int64_t plane, const std::array<int, 4>& order,
                    const std::array<double, 4>& factors);

// Every channel of an RGB image [3, plane] becomes its luma (0.299 R + 0.587 G + 0.114 B).
void GrayImageCpu(float* img, int64_t plane);

}  // namespace dino::data
