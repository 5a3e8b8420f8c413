#include "worker/data/augment_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "worker/data/augment_ops.h"

namespace dino::data {
namespace {

constexpr double kCubicA = -0.75;  // PyTorch's (and PIL's) bicubic coefficient

double Cubic1(double x) { return ((kCubicA + 2) * x - (kCubicA + 3)) * x * x + 1; }  // |x| <= 1
double Cubic2(double x) {                                                            // 1 < |x| < 2
  return ((kCubicA * x - 5 * kCubicA) * x + 8 * kCubicA) * x - 4 * kCubicA;
}

// Taps and weights of one output coordinate along one axis.
struct Taps {
  std::array<int32_t, 4> index;
  std::array<float, 4> weight;
};

// Source coordinate of output pixel j of `size` over [start, start + extent) of an axis of
// length n, mirrored when flip: the unnormalised grid_sample coordinate for align_corners false.
std::vector<Taps> AxisTaps(double start, double extent, int64_t size, int64_t n, bool flip,
                           Interpolation interpolation) {
  std::vector<Taps> taps(size);
  const auto clamp = [n](int64_t i) {
    return static_cast<int32_t>(std::min<int64_t>(std::max<int64_t>(i, 0), n - 1));
  };
  for (int64_t j = 0; j < size; ++j) {
    const double pos = flip ? static_cast<double>(size - j) - 0.5 : static_cast<double>(j) + 0.5;
    // Computed in float like grid_sample's grid, so both paths meet the same coordinates.
    const float x = static_cast<float>(start + extent * pos / static_cast<double>(size) - 0.5);
    Taps& t = taps[j];
    if (interpolation == Interpolation::kBicubic) {
      const double x0 = std::floor(x);
      const double f = x - x0;
      const int64_t i0 = static_cast<int64_t>(x0);
      t.weight = {static_cast<float>(Cubic2(f + 1)), static_cast<float>(Cubic1(f)),
                  static_cast<float>(Cubic1(1 - f)), static_cast<float>(Cubic2(2 - f))};
      t.index = {clamp(i0 - 1), clamp(i0), clamp(i0 + 1), clamp(i0 + 2)};
    } else {
      const double xc = std::min(std::max<double>(x, 0.0), static_cast<double>(n - 1));
      const double x0 = std::floor(xc);
      const double f = xc - x0;
      const int64_t i0 = static_cast<int64_t>(x0);
      t.weight = {static_cast<float>(1 - f), static_cast<float>(f), 0.0f, 0.0f};
      t.index = {clamp(i0), clamp(i0 + 1), clamp(i0), clamp(i0)};
    }
  }
  return taps;
}

}  // namespace

torch::Tensor ResizedCropsCpu(const torch::Tensor& canvas, const std::vector<CropBox>& boxes,
                              const std::vector<bool>& flip, int64_t size,
                              Interpolation interpolation) {
  const int64_t batch = canvas.size(0), channels = canvas.size(1);
  const int64_t hc = canvas.size(2), wc = canvas.size(3);
  auto src = canvas.contiguous();
  auto out = torch::empty({batch, channels, size, size}, torch::kFloat32);
  const uint8_t* in = src.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  const int ntaps = interpolation == Interpolation::kBicubic ? 4 : 2;
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> tmp;
    for (int64_t b = begin; b < end; ++b) {
      const CropBox& box = boxes[b];
      const auto xt = AxisTaps(box.left, box.width, size, wc, flip[b], interpolation);
      const auto yt = AxisTaps(box.top, box.height, size, hc, false, interpolation);
      int32_t rmin = static_cast<int32_t>(hc), rmax = -1;
      for (const Taps& t : yt) {
        for (int k = 0; k < ntaps; ++k) {
          rmin = std::min(rmin, t.index[k]);
          rmax = std::max(rmax, t.index[k]);
        }
      }
      const int64_t rows = rmax - rmin + 1;
      tmp.assign(rows * size, 0.0f);
      for (int64_t c = 0; c < channels; ++c) {
        const uint8_t* plane = in + (b * channels + c) * hc * wc;
        // Horizontal pass over the rows the vertical taps need.
        for (int64_t r = 0; r < rows; ++r) {
          const uint8_t* row = plane + (rmin + r) * wc;
          float* trow = tmp.data() + r * size;
          for (int64_t j = 0; j < size; ++j) {
            const Taps& t = xt[j];
            float s = 0;
            for (int k = 0; k < ntaps; ++k) s += t.weight[k] * static_cast<float>(row[t.index[k]]);
            trow[j] = s;
          }
        }
        // Vertical pass, vectorisable along the row.
        float* oplane = dst + (b * channels + c) * size * size;
        for (int64_t i = 0; i < size; ++i) {
          const Taps& t = yt[i];
          float* orow = oplane + i * size;
          const float* r0 = tmp.data() + (t.index[0] - rmin) * size;
          const float* r1 = tmp.data() + (t.index[1] - rmin) * size;
          const float w0 = t.weight[0] / 255.0f, w1 = t.weight[1] / 255.0f;
          if (ntaps == 2) {
            for (int64_t j = 0; j < size; ++j) orow[j] = w0 * r0[j] + w1 * r1[j];
          } else {
            const float* r2 = tmp.data() + (t.index[2] - rmin) * size;
            const float* r3 = tmp.data() + (t.index[3] - rmin) * size;
            const float w2 = t.weight[2] / 255.0f, w3 = t.weight[3] / 255.0f;
            for (int64_t j = 0; j < size; ++j) {
              const float v = w0 * r0[j] + w1 * r1[j] + w2 * r2[j] + w3 * r3[j];
              orow[j] = std::min(1.0f, std::max(0.0f, v));
            }
          }
        }
      }
    }
  });
  return out;
}

void GaussianBlurCpu(torch::Tensor& x, const std::vector<double>& sigma, int64_t radius) {
  const int64_t batch = x.size(0), channels = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t k = 2 * radius + 1;
  float* data = x.data_ptr<float>();
  const auto reflect = [](int64_t i, int64_t n) {
    return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
  };
  at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> tmp(h * w), weights(k);
    std::vector<const float*> rows(k);
    for (int64_t bc = begin; bc < end; ++bc) {
      const double s = sigma[bc / channels];
      if (s <= 0) continue;
      double total = 0;
      for (int64_t t = 0; t < k; ++t) {
        const double d = static_cast<double>(t - radius);
        total += std::exp(-d * d / (2 * s * s));
      }
      for (int64_t t = 0; t < k; ++t) {
        const double d = static_cast<double>(t - radius);
        weights[t] = static_cast<float>(std::exp(-d * d / (2 * s * s)) / total);
      }
      float* plane = data + bc * h * w;
      // Vertical pass into tmp (rows combined whole: vectorisable), then horizontal in place.
      for (int64_t i = 0; i < h; ++i) {
        float* trow = tmp.data() + i * w;
        std::fill(trow, trow + w, 0.0f);
        for (int64_t t = 0; t < k; ++t) {
          const float* srow = plane + reflect(i + t - radius, h) * w;
          const float wt = weights[t];
          for (int64_t j = 0; j < w; ++j) trow[j] += wt * srow[j];
        }
      }
      for (int64_t i = 0; i < h; ++i) {
        const float* trow = tmp.data() + i * w;
        float* orow = plane + i * w;
        for (int64_t j = 0; j < w; ++j) {
          float acc = 0;
          if (j >= radius && j + radius < w) {
            const float* p = trow + j - radius;
            for (int64_t t = 0; t < k; ++t) acc += weights[t] * p[t];
          } else {
            for (int64_t t = 0; t < k; ++t) acc += weights[t] * trow[reflect(j + t - radius, w)];
          }
          orow[j] = acc;
        }
      }
    }
  });
}

namespace {

inline float Clamp01(float v) { return std::min(1.0f, std::max(0.0f, v)); }

// torchvision's adjust_hue, one pass over the pixels of one RGB image (planes of `plane` floats).
void HueInPlace(float* r, float* g, float* b, int64_t plane, float shift) {
  for (int64_t p = 0; p < plane; ++p) {
    const float maxc = std::max(r[p], std::max(g[p], b[p]));
    const float minc = std::min(r[p], std::min(g[p], b[p]));
    const float cr = maxc - minc;
    if (cr == 0) {  // grey: the hue does not matter
      r[p] = g[p] = b[p] = Clamp01(maxc);
      continue;
    }
    const float sat = cr / maxc;
    const float rc = (maxc - r[p]) / cr, gc = (maxc - g[p]) / cr, bc = (maxc - b[p]) / cr;
    float h;
    if (maxc == r[p]) {
      h = bc - gc;
    } else if (maxc == g[p]) {
      h = 2.0f + rc - bc;
    } else {
      h = 4.0f + gc - rc;
    }
    h = std::fmod(h / 6.0f + 1.0f + shift, 1.0f);
    const float vs = maxc * sat;
    const auto channel = [&](float n) {
      const float k = std::fmod(n + h * 6.0f, 6.0f);
      return Clamp01(maxc - vs * Clamp01(std::min(k, 4.0f - k)));
    };
    r[p] = channel(5.0f);
    g[p] = channel(3.0f);
    b[p] = channel(1.0f);
  }
}

}  // namespace

void ColorJitterCpu(torch::Tensor& x, const JitterParams& params) {
  const int64_t batch = x.size(0), channels = x.size(1), plane = x.size(2) * x.size(3);
  const bool rgb = channels == 3;
  float* data = x.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      if (!params.apply[s]) continue;
      float* img = data + s * channels * plane;
      float* r = img;
      float* g = rgb ? img + plane : img;
      float* b = rgb ? img + 2 * plane : img;
      const auto luma = [&](int64_t p) {
        return rgb ? 0.299f * r[p] + 0.587f * g[p] + 0.114f * b[p] : r[p];
      };
      for (int slot = 0; slot < 4; ++slot) {
        const int op = params.order[s][slot];
        if (!rgb && op >= 2) continue;  // saturation and hue do nothing to grey images
        const float f = static_cast<float>(params.factors[s][op]);
        if (op == 0) {
          for (int64_t p = 0; p < channels * plane; ++p) img[p] = Clamp01(img[p] * f);
        } else if (op == 1) {
          double sum = 0;
          for (int64_t p = 0; p < plane; ++p) sum += luma(p);
          const float mean = static_cast<float>(sum / static_cast<double>(plane));
          const float offset = (1 - f) * mean;
          for (int64_t p = 0; p < channels * plane; ++p) img[p] = Clamp01(f * img[p] + offset);
        } else if (op == 2) {
          for (int64_t p = 0; p < plane; ++p) {
            const float l = (1 - f) * luma(p);
            r[p] = Clamp01(f * r[p] + l);
            g[p] = Clamp01(f * g[p] + l);
            b[p] = Clamp01(f * b[p] + l);
          }
        } else {
          HueInPlace(r, g, b, plane, f);
        }
      }
    }
  });
}

}  // namespace dino::data
