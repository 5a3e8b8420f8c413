#include "worker/data/augment_color.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>

namespace dino::data {
namespace {

inline float Clamp01(float v) { return std::min(1.0f, std::max(0.0f, v)); }

// Mean luma of one image (C = 1: the mean), in eight float lanes summed into a double.
float MeanLuma(const float* __restrict r, const float* __restrict g, const float* __restrict b,
               bool rgb, int64_t plane) {
  constexpr int64_t kLanes = 8;
  float lanes[kLanes] = {};
  int64_t p = 0;
  if (rgb) {
    for (; p + kLanes <= plane; p += kLanes) {
      for (int64_t k = 0; k < kLanes; ++k) {
        lanes[k] += 0.299f * r[p + k] + 0.587f * g[p + k] + 0.114f * b[p + k];
      }
    }
  } else {
    for (; p + kLanes <= plane; p += kLanes) {
      for (int64_t k = 0; k < kLanes; ++k) lanes[k] += r[p + k];
    }
  }
  double sum = 0;
  for (; p < plane; ++p) sum += rgb ? 0.299f * r[p] + 0.587f * g[p] + 0.114f * b[p] : r[p];
  for (float l : lanes) sum += l;
  return static_cast<float>(sum / static_cast<double>(plane));
}

// x = clamp(f·x + offset, 0, 1) over n floats.
void ScaleShift(float* __restrict x, int64_t n, float f, float offset) {
  for (int64_t p = 0; p < n; ++p) x[p] = Clamp01(f * x[p] + offset);
}

void SaturationInPlace(float* __restrict r, float* __restrict g, float* __restrict b, int64_t plane,
                       float f) {
  for (int64_t p = 0; p < plane; ++p) {
    const float l = (1 - f) * (0.299f * r[p] + 0.587f * g[p] + 0.114f * b[p]);
    r[p] = Clamp01(f * r[p] + l);
    g[p] = Clamp01(f * g[p] + l);
    b[p] = Clamp01(f * b[p] + l);
  }
}

// torchvision's adjust_hue on pixels [begin, end) of one RGB image, exactly the tensor path's
// arithmetic: a grey pixel (max = min) divides by 1 instead of 0, getting saturation 0;
// fmod(h, 1) = h − trunc(h) for h ∈ (0, 7/3] and fmod(k, 6) = k − 6·trunc(k / 6) for k ∈ [1, 11],
// both exact. The one-hot masks multiply in exactly (x·1 + y·0 = x for finite values).
void HueScalar(float* __restrict r, float* __restrict g, float* __restrict b, int64_t begin,
               int64_t end, float shift) {
  for (int64_t p = begin; p < end; ++p) {
    const float rv = r[p], gv = g[p], bv = b[p];
    const float maxc = std::max(rv, std::max(gv, bv));
    const float minc = std::min(rv, std::min(gv, bv));
    const float cr = maxc - minc;
    const float grey = cr == 0 ? 1.0f : 0.0f;
    const float sat = cr / (maxc + grey);
    const float crd = cr + grey;
    const float rc = (maxc - rv) / crd, gc = (maxc - gv) / crd, bc = (maxc - bv) / crd;
    const float is_r = maxc == rv ? 1.0f : 0.0f;
    const float is_g = (maxc == gv ? 1.0f : 0.0f) * (1.0f - is_r);
    const float is_b = 1.0f - is_r - is_g;
    float h = is_r * (bc - gc) + is_g * (2.0f + rc - bc) + is_b * (4.0f + gc - rc);
    h = h / 6.0f + 1.0f + shift;
    h -= static_cast<float>(static_cast<int32_t>(h));
    const float vs = maxc * sat;
    const auto channel = [&](float n) {
      const float k = n + h * 6.0f;
      const float km = k - 6.0f * static_cast<float>(static_cast<int32_t>(k / 6.0f));
      return Clamp01(maxc - vs * Clamp01(std::min(km, 4.0f - km)));
    };
    r[p] = channel(5.0f);
    g[p] = channel(3.0f);
    b[p] = channel(1.0f);
  }
}

#if defined(__SSE2__)
// The same arithmetic, four pixels at a time in SSE2 (part of every x86-64 CPU). GCC does not
// vectorise the scalar loop by itself: under the default -ftrapping-math it keeps its selects as
// branches. Bitwise selects replace the one-hot masks, and comparisons the truncations (the same
// values).
int64_t HueSse2(float* r, float* g, float* b, int64_t plane, float shift) {
  const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f), two = _mm_set1_ps(2.0f);
  const __m128 four = _mm_set1_ps(4.0f), six = _mm_set1_ps(6.0f), sh = _mm_set1_ps(shift);
  const auto clamp01 = [&](__m128 v) { return _mm_min_ps(one, _mm_max_ps(zero, v)); };
  const auto select = [](__m128 mask, __m128 a, __m128 b) {
    return _mm_or_ps(_mm_and_ps(mask, a), _mm_andnot_ps(mask, b));
  };
  int64_t p = 0;
  for (; p + 4 <= plane; p += 4) {
    const __m128 rv = _mm_loadu_ps(r + p), gv = _mm_loadu_ps(g + p), bv = _mm_loadu_ps(b + p);
    const __m128 maxc = _mm_max_ps(rv, _mm_max_ps(gv, bv));
    const __m128 minc = _mm_min_ps(rv, _mm_min_ps(gv, bv));
    const __m128 cr = _mm_sub_ps(maxc, minc);
    const __m128 grey = _mm_and_ps(_mm_cmpeq_ps(cr, zero), one);
    const __m128 sat = _mm_div_ps(cr, _mm_add_ps(maxc, grey));
    const __m128 crd = _mm_add_ps(cr, grey);
    const __m128 rc = _mm_div_ps(_mm_sub_ps(maxc, rv), crd);
    const __m128 gc = _mm_div_ps(_mm_sub_ps(maxc, gv), crd);
    const __m128 bc = _mm_div_ps(_mm_sub_ps(maxc, bv), crd);
    const __m128 is_r = _mm_cmpeq_ps(maxc, rv), is_g = _mm_cmpeq_ps(maxc, gv);
    __m128 h = select(
        is_r, _mm_sub_ps(bc, gc),
        select(is_g, _mm_sub_ps(_mm_add_ps(two, rc), bc), _mm_sub_ps(_mm_add_ps(four, gc), rc)));
    h = _mm_add_ps(_mm_add_ps(_mm_div_ps(h, six), one), sh);
    // h − trunc(h) on (0, 7/3]: subtract 1 per threshold passed (no conversion; same value).
    h = _mm_sub_ps(h, _mm_add_ps(_mm_and_ps(_mm_cmpge_ps(h, one), one),
                                 _mm_and_ps(_mm_cmpge_ps(h, two), one)));
    const __m128 vs = _mm_mul_ps(maxc, sat), h6 = _mm_mul_ps(h, six);
    const auto channel = [&](float n) {
      const __m128 k = _mm_add_ps(_mm_set1_ps(n), h6);
      const __m128 km = _mm_sub_ps(k, _mm_and_ps(_mm_cmpge_ps(k, six), six));  // k − 6 if k ≥ 6
      const __m128 m = clamp01(_mm_min_ps(km, _mm_sub_ps(four, km)));
      return clamp01(_mm_sub_ps(maxc, _mm_mul_ps(vs, m)));
    };
    _mm_storeu_ps(r + p, channel(5.0f));
    _mm_storeu_ps(g + p, channel(3.0f));
    _mm_storeu_ps(b + p, channel(1.0f));
  }
  return p;
}
#endif

void HueInPlace(float* r, float* g, float* b, int64_t plane, float shift) {
  int64_t done = 0;
#if defined(__SSE2__)
  done = HueSse2(r, g, b, plane, shift);
#endif
  HueScalar(r, g, b, done, plane, shift);
}

}  // namespace

void JitterImageCpu(float* img, int64_t channels, int64_t plane, const std::array<int, 4>& order,
                    const std::array<double, 4>& factors) {
  const bool rgb = channels == 3;
  float* r = img;
  float* g = rgb ? img + plane : img;
  float* b = rgb ? img + 2 * plane : img;
  for (int slot = 0; slot < 4; ++slot) {
    const int op = order[slot];
    if (!rgb && op >= 2) continue;  // saturation and hue do nothing to grey images
    const float f = static_cast<float>(factors[op]);
    if (op == 0) {
      for (int64_t p = 0; p < channels * plane; ++p) img[p] = Clamp01(img[p] * f);
    } else if (op == 1) {
      ScaleShift(img, channels * plane, f, (1 - f) * MeanLuma(r, g, b, rgb, plane));
    } else if (op == 2) {
      SaturationInPlace(r, g, b, plane, f);
    } else {
      HueInPlace(r, g, b, plane, f);
    }
  }
}

void GrayImageCpu(float* img, int64_t plane) {
  float* __restrict r = img;
  float* __restrict g = img + plane;
  float* __restrict b = img + 2 * plane;
  for (int64_t p = 0; p < plane; ++p) {
    const float l = 0.299f * r[p] + 0.587f * g[p] + 0.114f * b[p];
    r[p] = g[p] = b[p] = l;
  }
}

}  // namespace dino::data
