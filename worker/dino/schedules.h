// DINO's training schedules as pure functions of (iteration, total iterations).
//
// They reproduce the reference implementation's numpy tables value for value: a linear warm-up
// `linspace(start, base, warmup_iters)` followed by a half cosine from `base` to `final` over the
// remaining iterations. The teacher temperature is per epoch, as in the reference DINOLoss:
// `linspace(warmup_temp, temp, warmup_epochs)` then constant.
//
// Thread-safety: stateless. Failure: never fails; iterations past the end are clamped to the last
// iteration, negative ones to 0.
#pragma once

#include <cstdint>

namespace dino {

// Value at iteration `it` of a schedule of `total_iters` iterations whose first `warmup_iters`
// rise linearly from `warmup_start` to `base` (both endpoints included), then follow
// final + (base - final) * (1 + cos(pi * i / n)) / 2 with i counted from the end of the warm-up
// and n = total_iters - warmup_iters.
double CosineSchedule(double base, double final_value, int64_t it, int64_t total_iters,
                      int64_t warmup_iters = 0, double warmup_start = 0.0);

// Teacher temperature for `epoch`: linear from `warmup_temp` (epoch 0) to `temp`
// (epoch warmup_epochs - 1), then `temp`.
double TeacherTemperature(int64_t epoch, double warmup_temp, double temp, int64_t warmup_epochs);

}  // namespace dino
