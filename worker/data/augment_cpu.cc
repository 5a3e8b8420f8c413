#include "worker/data/augment_cpu.h"

#include <ATen/Parallel.h>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <thread>

#include "worker/data/augment_color.h"
#include "worker/data/augment_ops.h"
#include "worker/data/augment_pool.h"

namespace dino::data {
namespace {

constexpr double kCubicA = -0.75;  // PyTorch's (and PIL's) bicubic coefficient

double Cubic1(double x) { return ((kCubicA + 2) * x - (kCubicA + 3)) * x * x + 1; }  // |x| <= 1
double Cubic2(double x) {                                                            // 1 < |x| < 2
  return ((kCubicA * x - 5 * kCubicA) * x + 8 * kCubicA) * x - 4 * kCubicA;
}

// Taps and weights of one output coordinate along one axis: index[k] is first + k clamped to the
// axis (bilinear: only taps 0 and 1 count).
struct Taps {
  std::array<int32_t, 4> index;
  std::array<float, 4> weight;
  int32_t first;
};

// Source coordinate of output pixel j of `size` over [start, start + extent) of an axis of
// length n, mirrored when flip: the unnormalised grid_sample coordinate for align_corners false.
void AxisTaps(double start, double extent, int64_t size, int64_t n, bool flip,
              Interpolation interpolation, std::vector<Taps>& taps) {
  taps.resize(size);
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
      t.first = static_cast<int32_t>(i0 - 1);
    } else {
      const double xc = std::min(std::max<double>(x, 0.0), static_cast<double>(n - 1));
      const double x0 = std::floor(xc);
      const double f = xc - x0;
      const int64_t i0 = static_cast<int64_t>(x0);
      t.weight = {static_cast<float>(1 - f), static_cast<float>(f), 0.0f, 0.0f};
      t.index = {clamp(i0), clamp(i0 + 1), clamp(i0), clamp(i0)};
      t.first = static_cast<int32_t>(i0);
    }
  }
}

// Per-thread scratch buffers, reused across the tasks and calls of one thread.
struct Scratch {
  std::vector<float> tmp, pad, weights, frow;
  std::vector<const float*> rows;
  std::vector<Taps> xt, yt;
};

// out[j] = Σ_k weight_k · f[first + k − lo] for the 4 taps of each output j (f starts at column
// lo). Four outputs at a time in SSE2: their four products each, transposed and summed in the
// scalar order ((p0 + p1) + p2) + p3, so both give the same floats.
void BicubicRow(const float* f, int64_t lo, const Taps* taps, int64_t size, float* __restrict out) {
  int64_t j = 0;
#if defined(__SSE2__)
  for (; j + 4 <= size; j += 4) {
    const auto product = [&](int64_t q) {
      return _mm_mul_ps(_mm_loadu_ps(taps[q].weight.data()),
                        _mm_loadu_ps(f + (taps[q].first - lo)));
    };
    __m128 p0 = product(j), p1 = product(j + 1), p2 = product(j + 2), p3 = product(j + 3);
    _MM_TRANSPOSE4_PS(p0, p1, p2, p3);
    _mm_storeu_ps(out + j, _mm_add_ps(_mm_add_ps(_mm_add_ps(p0, p1), p2), p3));
  }
#endif
  for (; j < size; ++j) {
    const Taps& t = taps[j];
    const float* v = f + (t.first - lo);
    out[j] = t.weight[0] * v[0] + t.weight[1] * v[1] + t.weight[2] * v[2] + t.weight[3] * v[3];
  }
}

// Box `box` of one image (uint8 planes [C, h, w] at `in`) resampled to size×size floats in [0, 1]
// at `out` ([C, size, size]), mirrored horizontally when flip.
void ResampleImage(const uint8_t* in, int64_t channels, int64_t h, int64_t w, const CropBox& box,
                   bool flip, int64_t size, Interpolation interpolation, float* out, Scratch& s) {
  const int ntaps = interpolation == Interpolation::kBicubic ? 4 : 2;
  AxisTaps(box.left, box.width, size, w, flip, interpolation, s.xt);
  AxisTaps(box.top, box.height, size, h, false, interpolation, s.yt);
  int32_t rmin = static_cast<int32_t>(h), rmax = -1;
  for (const Taps& t : s.yt) {
    for (int k = 0; k < ntaps; ++k) {
      rmin = std::min(rmin, t.index[k]);
      rmax = std::max(rmax, t.index[k]);
    }
  }
  const int64_t rows = rmax - rmin + 1;
  s.tmp.resize(rows * size);
  float* tmp = s.tmp.data();
  // Columns [lo, hi] hold every horizontal tap before clamping; each row is read into frow as
  // floats, replicated past the image edges, so tap k of output j is frow[first_j - lo + k].
  int64_t lo = w, hi = -1;
  for (const Taps& t : s.xt) {
    lo = std::min<int64_t>(lo, t.first);
    hi = std::max<int64_t>(hi, t.first + ntaps - 1);
  }
  const int64_t in_lo = std::max<int64_t>(lo, 0), in_hi = std::min<int64_t>(hi, w - 1);
  s.frow.resize(hi - lo + 1);
  float* frow = s.frow.data();
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* plane = in + c * h * w;
    // Horizontal pass over the rows the vertical taps need.
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* __restrict row = plane + (rmin + r) * w;
      for (int64_t x = lo; x < in_lo; ++x) frow[x - lo] = static_cast<float>(row[0]);
      for (int64_t x = in_lo; x <= in_hi; ++x) frow[x - lo] = static_cast<float>(row[x]);
      for (int64_t x = in_hi + 1; x <= hi; ++x) frow[x - lo] = static_cast<float>(row[w - 1]);
      float* __restrict trow = tmp + r * size;
      if (ntaps == 2) {
        for (int64_t j = 0; j < size; ++j) {
          const Taps& t = s.xt[j];
          const float* f = frow + (t.first - lo);
          trow[j] = t.weight[0] * f[0] + t.weight[1] * f[1];
        }
      } else {
        BicubicRow(frow, lo, s.xt.data(), size, trow);
      }
    }
    // Vertical pass, vectorisable along the row.
    float* oplane = out + c * size * size;
    for (int64_t i = 0; i < size; ++i) {
      const Taps& t = s.yt[i];
      float* __restrict orow = oplane + i * size;
      const float* __restrict r0 = tmp + (t.index[0] - rmin) * size;
      const float* __restrict r1 = tmp + (t.index[1] - rmin) * size;
      const float w0 = t.weight[0] / 255.0f, w1 = t.weight[1] / 255.0f;
      if (ntaps == 2) {
        for (int64_t j = 0; j < size; ++j) orow[j] = w0 * r0[j] + w1 * r1[j];
      } else {
        const float* __restrict r2 = tmp + (t.index[2] - rmin) * size;
        const float* __restrict r3 = tmp + (t.index[3] - rmin) * size;
        const float w2 = t.weight[2] / 255.0f, w3 = t.weight[3] / 255.0f;
        for (int64_t j = 0; j < size; ++j) {
          const float v = w0 * r0[j] + w1 * r1[j] + w2 * r2[j] + w3 * r3[j];
          orow[j] = std::min(1.0f, std::max(0.0f, v));
        }
      }
    }
  }
}

inline int64_t Reflect(int64_t i, int64_t n) { return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; }

// Normalised Gaussian weights[0 .. 2 radius] of σ, as the tensor path computes them.
void GaussianWeights(double sigma, int64_t radius, std::vector<float>& weights) {
  const int64_t k = 2 * radius + 1;
  weights.resize(k);
  double total = 0;
  for (int64_t t = 0; t < k; ++t) {
    const double d = static_cast<double>(t - radius);
    total += std::exp(-d * d / (2 * sigma * sigma));
  }
  for (int64_t t = 0; t < k; ++t) {
    const double d = static_cast<double>(t - radius);
    weights[t] = static_cast<float>(std::exp(-d * d / (2 * sigma * sigma)) / total);
  }
}

// out[j] = Σ_t weights[t] · rows[t][j] for j < n, summed in tap order from 0 (as a loop of
// out[j] += w·row[j] over the taps would). SSE2: eight outputs at a time in two registers, so the
// accumulators stay in registers over all the taps instead of going through memory per tap.
void WeightedRowSum(const float* const* rows, const float* weights, int64_t k, int64_t n,
                    float* __restrict out) {
  int64_t j = 0;
#if defined(__SSE2__)
  for (; j + 8 <= n; j += 8) {
    __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps();
    for (int64_t t = 0; t < k; ++t) {
      const __m128 wt = _mm_set1_ps(weights[t]);
      a0 = _mm_add_ps(a0, _mm_mul_ps(wt, _mm_loadu_ps(rows[t] + j)));
      a1 = _mm_add_ps(a1, _mm_mul_ps(wt, _mm_loadu_ps(rows[t] + j + 4)));
    }
    _mm_storeu_ps(out + j, a0);
    _mm_storeu_ps(out + j + 4, a1);
  }
#endif
  for (; j < n; ++j) {
    float acc = 0.0f;
    for (int64_t t = 0; t < k; ++t) acc += weights[t] * rows[t][j];
    out[j] = acc;
  }
}

// Separable blur of one h×w plane in place with reflect padding (radius < min(h, w)).
void BlurPlane(float* plane, int64_t h, int64_t w, const float* weights, int64_t radius,
               Scratch& s) {
  const int64_t k = 2 * radius + 1;
  s.tmp.resize(h * w);
  s.pad.resize(w + 2 * radius);
  s.rows.resize(k);
  float* pad = s.pad.data();
  const float** rows = s.rows.data();
  // Vertical pass into tmp.
  for (int64_t i = 0; i < h; ++i) {
    for (int64_t t = 0; t < k; ++t) rows[t] = plane + Reflect(i + t - radius, h) * w;
    WeightedRowSum(rows, weights, k, w, s.tmp.data() + i * w);
  }
  // Horizontal pass from a reflect-padded copy of each row, back into the plane.
  for (int64_t t = 0; t < k; ++t) rows[t] = pad + t;
  for (int64_t i = 0; i < h; ++i) {
    const float* trow = s.tmp.data() + i * w;
    for (int64_t q = 0; q < radius; ++q) pad[q] = trow[radius - q];
    std::copy(trow, trow + w, pad + radius);
    for (int64_t q = 0; q < radius; ++q) pad[radius + w + q] = trow[w - 2 - q];
    WeightedRowSum(rows, weights, k, w, plane + i * w);
  }
}

// Blurs the planes of one [C, h, w] image with σ (> 0), the radius of that σ.
void BlurImage(float* img, int64_t channels, int64_t h, int64_t w, double sigma, Scratch& s) {
  const int64_t radius = BlurRadius(sigma, h, w);
  if (radius <= 0) return;
  GaussianWeights(sigma, radius, s.weights);
  for (int64_t c = 0; c < channels; ++c) {
    BlurPlane(img + c * h * w, h, w, s.weights.data(), radius, s);
  }
}

// Solarize (when `solarize`) and normalise one [C, plane] image in place.
void FinishImage(float* img, int64_t channels, int64_t plane, bool solarize, const float* mean,
                 const float* inv_std) {
  for (int64_t c = 0; c < channels; ++c) {
    float* __restrict x = img + c * plane;
    const float m = mean[c], is = inv_std[c];
    if (solarize) {
      // x ≥ 0.5 → 1 − x is min(x, 1 − x) exactly (1 − x is exact for x ≥ 0.5); it vectorises.
      for (int64_t p = 0; p < plane; ++p) x[p] = (std::min(x[p], 1.0f - x[p]) - m) * is;
    } else {
      for (int64_t p = 0; p < plane; ++p) x[p] = (x[p] - m) * is;
    }
  }
}

}  // namespace

std::vector<torch::Tensor> MultiCropCpu(const std::vector<torch::Tensor>& images,
                                        const std::vector<ViewParams>& views,
                                        const AugmentOptions& options,
                                        const NormalizationStats& stats, BufferPool* pool) {
  const int64_t batch = static_cast<int64_t>(images.size());
  const int64_t num_views = static_cast<int64_t>(views.size());
  const int64_t channels = images[0].size(0);
  std::vector<torch::Tensor> src;
  src.reserve(batch);
  for (const auto& im : images) src.push_back(im.contiguous());
  std::vector<torch::Tensor> out;
  for (int64_t v = 0; v < num_views; ++v) {
    const int64_t size = options.view(v).crop_size;
    out.push_back(pool != nullptr ? pool->Empty({batch, channels, size, size})
                                  : torch::empty({batch, channels, size, size}, torch::kFloat32));
  }
  // As the tensor path: float mean, and the reciprocal of the std taken in double.
  std::array<float, 3> mean{}, inv_std{};
  for (int64_t c = 0; c < channels; ++c) {
    mean[c] = static_cast<float>(stats.mean[c]);
    inv_std[c] = static_cast<float>(1.0 / stats.std[c]);
  }
  // Tasks are handed out one at a time from a shared counter, so a thread slowed by other load on
  // its core does not hold the batch up; each task writes only its own output slot. The threads
  // are plain std::threads, as many as LibTorch's intra-op count: at::parallel_for compiled in
  // this library (built without -fopenmp) would run serially.
  const int64_t tasks = batch * num_views;
  std::atomic<int64_t> next{0};
  const auto work = [&] {
    thread_local Scratch s;
    for (int64_t t = next.fetch_add(1); t < tasks; t = next.fetch_add(1)) {
      const int64_t v = t % num_views, b = t / num_views;
      const ViewParams& p = views[v];
      const int64_t size = options.view(v).crop_size, plane = size * size;
      float* img = out[v].data_ptr<float>() + b * channels * plane;
      ResampleImage(src[b].data_ptr<uint8_t>(), channels, src[b].size(1), src[b].size(2),
                    p.boxes[b], p.flip[b], size, options.interpolation, img, s);
      if (p.jitter.apply[b]) {
        JitterImageCpu(img, channels, plane, p.jitter.order[b], p.jitter.factors[b]);
      }
      if (channels == 3 && p.gray[b]) GrayImageCpu(img, plane);
      if (p.sigma[b] > 0) BlurImage(img, channels, size, size, p.sigma[b], s);
      FinishImage(img, channels, plane, p.solarize[b], mean.data(), inv_std.data());
    }
  };
  const int64_t workers = std::min<int64_t>(std::max(1, at::get_num_threads()), tasks);
  std::vector<std::thread> helpers;
  helpers.reserve(workers - 1);
  for (int64_t i = 1; i < workers; ++i) helpers.emplace_back(work);
  work();
  for (auto& t : helpers) t.join();
  return out;
}

torch::Tensor ResizedCropsCpu(const torch::Tensor& canvas, const std::vector<CropBox>& boxes,
                              const std::vector<bool>& flip, int64_t size,
                              Interpolation interpolation) {
  const int64_t batch = canvas.size(0), channels = canvas.size(1);
  const int64_t hc = canvas.size(2), wc = canvas.size(3);
  auto src = canvas.contiguous();
  auto out = torch::empty({batch, channels, size, size}, torch::kFloat32);
  const uint8_t* in = src.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    Scratch s;
    for (int64_t b = begin; b < end; ++b) {
      ResampleImage(in + b * channels * hc * wc, channels, hc, wc, boxes[b], flip[b], size,
                    interpolation, dst + b * channels * size * size, s);
    }
  });
  return out;
}

void GaussianBlurCpu(torch::Tensor& x, const std::vector<double>& sigma) {
  const int64_t batch = x.size(0), channels = x.size(1), h = x.size(2), w = x.size(3);
  float* data = x.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    Scratch s;
    for (int64_t b = begin; b < end; ++b) {
      if (sigma[b] > 0) BlurImage(data + b * channels * h * w, channels, h, w, sigma[b], s);
    }
  });
}

void ColorJitterCpu(torch::Tensor& x, const JitterParams& params) {
  const int64_t batch = x.size(0), channels = x.size(1), plane = x.size(2) * x.size(3);
  float* data = x.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      if (params.apply[s]) {
        JitterImageCpu(data + s * channels * plane, channels, plane, params.order[s],
                       params.factors[s]);
      }
    }
  });
}

}  // namespace dino::data
