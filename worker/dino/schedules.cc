#include "worker/dino/schedules.h"

#include <algorithm>
#include <cmath>

namespace dino {
namespace {

// numpy.linspace(start, stop, num)[i].
double Linspace(double start, double stop, int64_t num, int64_t i) {
  if (num <= 1) return start;
  const double step = (stop - start) / static_cast<double>(num - 1);
  // numpy sets the last element to `stop` exactly.
  if (i == num - 1) return stop;
  return start + static_cast<double>(i) * step;
}

}  // namespace

double CosineSchedule(double base, double final_value, int64_t it, int64_t total_iters,
                      int64_t warmup_iters, double warmup_start) {
  if (total_iters <= 0) return base;
  it = std::clamp<int64_t>(it, 0, total_iters - 1);
  warmup_iters = std::clamp<int64_t>(warmup_iters, 0, total_iters);
  if (it < warmup_iters) return Linspace(warmup_start, base, warmup_iters, it);
  const int64_t n = total_iters - warmup_iters;
  const double i = static_cast<double>(it - warmup_iters);
  return final_value +
         0.5 * (base - final_value) * (1.0 + std::cos(M_PI * i / static_cast<double>(n)));
}

double TeacherTemperature(int64_t epoch, double warmup_temp, double temp, int64_t warmup_epochs) {
  if (epoch < 0) epoch = 0;
  if (epoch >= warmup_epochs) return temp;
  return Linspace(warmup_temp, temp, warmup_epochs, epoch);
}

}  // namespace dino
