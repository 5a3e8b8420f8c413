// Synthetic shapes: image i has label i % num_classes; the class fixes the shape family
// (disc, square, triangle, ring, cross, then the same families again with stripes) and the colour
// (hue k / K, or a grey level for 1 channel). Position, size and the background (a random linear
// gradient plus per-pixel noise) come from a generator seeded by (seed, i), so any image can be
// rendered on demand, from any thread, always the same.
#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "worker/data/dataset.h"
#include "worker/data/splitmix.h"

namespace dino::data {
namespace {

double U(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// RGB in [0, 1] of a fully saturated colour with hue h in [0, 1).
void HueToRgb(double h, double rgb[3]) {
  for (int c = 0; c < 3; ++c) {
    const double n = c == 0 ? 5.0 : c == 1 ? 3.0 : 1.0;
    const double k = std::fmod(n + h * 6.0, 6.0);
    rgb[c] = 1.0 - std::clamp(std::min(k, 4.0 - k), 0.0, 1.0);
  }
}

// Whether point (x, y), relative to the centre and divided by the radius, is inside the shape.
bool Inside(int family, bool striped, double x, double y) {
  const double r = std::sqrt(x * x + y * y);
  bool in = false;
  switch (family) {
    case 0:
      in = r <= 1.0;
      break;
    case 1:
      in = std::abs(x) <= 0.8 && std::abs(y) <= 0.8;
      break;
    case 2:
      in = y <= 0.8 && y >= -1.0 + 2 * std::abs(x);
      break;
    case 3:
      in = r <= 1.0 && r >= 0.55;
      break;
    default:
      in = (std::abs(x) <= 0.3 && std::abs(y) <= 1.0) || (std::abs(y) <= 0.3 && std::abs(x) <= 1.0);
  }
  if (in && striped) in = static_cast<int>(std::floor((y + 1.0) * 3.0)) % 2 == 0;
  return in;
}

class SyntheticDataset final : public Dataset {
 public:
  explicit SyntheticDataset(SyntheticOptions o) : o_(o) {}

  int64_t size() const override { return o_.size; }
  int64_t channels() const override { return o_.channels; }
  int64_t height() const override { return o_.resolution; }
  int64_t width() const override { return o_.resolution; }
  bool has_labels() const override { return true; }
  std::optional<int64_t> Label(int64_t index) const override {
    if (index < 0 || index >= size()) return std::nullopt;
    return index % o_.num_classes;
  }
  int64_t num_classes() const override { return o_.num_classes; }
  std::string name() const override {
    return absl::StrCat("synthetic:", o_.size, "x", o_.channels, "x", o_.resolution,
                        "px,seed=", o_.seed);
  }

  absl::StatusOr<torch::Tensor> GetImage(int64_t index) const override {
    if (index < 0 || index >= size()) {
      return absl::OutOfRangeError(absl::StrCat(name(), ": index ", index, " out of range"));
    }
    const int64_t label = index % o_.num_classes;
    const int family = static_cast<int>(label % 5);
    const bool striped = (label / 5) % 2 == 1;
    double colour[3];
    HueToRgb(static_cast<double>(label) / static_cast<double>(o_.num_classes), colour);
    const double grey =
        0.35 + 0.6 * static_cast<double>(label) / static_cast<double>(o_.num_classes);

    std::mt19937_64 rng(SplitMix64(o_.seed ^ SplitMix64(static_cast<uint64_t>(index))));
    const double res = static_cast<double>(o_.resolution);
    const double radius = res * (0.18 + 0.17 * U(rng));
    const double cx = radius + (res - 2 * radius) * U(rng);
    const double cy = radius + (res - 2 * radius) * U(rng);
    const double angle = 2 * M_PI * U(rng);
    const double gx = std::cos(angle) / res, gy = std::sin(angle) / res;
    const double base = 0.1 + 0.15 * U(rng);

    const int64_t c = o_.channels, n = o_.resolution;
    auto image = torch::empty({c, n, n}, torch::kUInt8);
    uint8_t* px = image.data_ptr<uint8_t>();
    for (int64_t y = 0; y < n; ++y) {
      for (int64_t x = 0; x < n; ++x) {
        const double bg = base + 0.15 * ((x - res / 2) * gx + (y - res / 2) * gy) + 0.05 * U(rng);
        const bool in = Inside(family, striped, (x + 0.5 - cx) / radius, (y + 0.5 - cy) / radius);
        for (int64_t k = 0; k < c; ++k) {
          const double v = in ? (c == 1 ? grey : 0.2 + 0.8 * colour[k]) : bg;
          px[(k * n + y) * n + x] =
              static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255));
        }
      }
    }
    return image;
  }

 private:
  const SyntheticOptions o_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<Dataset>> MakeSyntheticDataset(const SyntheticOptions& options) {
  if (options.size <= 0 || (options.channels != 1 && options.channels != 3) ||
      options.resolution < 4 || options.num_classes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic dataset: bad options (size ", options.size, ", channels ", options.channels,
        ", resolution ", options.resolution, ", classes ", options.num_classes, ")"));
  }
  return std::shared_ptr<Dataset>(std::make_shared<SyntheticDataset>(options));
}

}  // namespace dino::data
