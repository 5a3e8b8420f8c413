#include "worker/data/augment_ops.h"

#include <algorithm>
#include <cmath>

#include "worker/data/augment_cpu.h"

namespace dino::data {
namespace {

namespace F = torch::nn::functional;

// Indices b where mask[b], as an int64 tensor on `device` (undefined when none).
torch::Tensor MaskIndices(const std::vector<bool>& mask, torch::Device device) {
  std::vector<int64_t> idx;
  for (size_t b = 0; b < mask.size(); ++b) {
    if (mask[b]) idx.push_back(static_cast<int64_t>(b));
  }
  if (idx.empty()) return {};
  return torch::tensor(idx, torch::kInt64).to(device);
}

// Per-sample scalars as a [n, 1, 1, 1] tensor of x's dtype on x's device.
torch::Tensor PerSample(const std::vector<double>& values, const torch::Tensor& like) {
  return torch::tensor(values, torch::kFloat64)
      .to(like.device(), like.scalar_type())
      .view({-1, 1, 1, 1});
}

torch::Tensor Blend(const torch::Tensor& x, const torch::Tensor& other,
                    const torch::Tensor& factor) {
  return (factor * x + (1 - factor) * other).clamp_(0, 1);
}

// torchvision's adjust_hue on tensors, with the hsv → rgb step written as
// f(n) = v − v·s·clamp(min(k, 4 − k), 0, 1), k = (n + 6h) mod 6, n = 5, 3, 1 for r, g, b.
torch::Tensor AdjustHue(const torch::Tensor& x, const torch::Tensor& shift) {
  auto r = x.select(1, 0).unsqueeze(1);
  auto g = x.select(1, 1).unsqueeze(1);
  auto b = x.select(1, 2).unsqueeze(1);
  auto maxc = std::get<0>(x.max(1, /*keepdim=*/true));
  auto minc = std::get<0>(x.min(1, /*keepdim=*/true));
  auto cr = maxc - minc;
  auto eqc = cr == 0;
  auto ones = torch::ones_like(maxc);
  auto s = cr / torch::where(eqc, ones, maxc);
  auto crd = torch::where(eqc, ones, cr);
  auto rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
  auto is_r = maxc == r;
  auto is_g = (maxc == g).logical_and(is_r.logical_not());
  auto h = torch::where(is_r, bc - gc, torch::where(is_g, 2.0 + rc - bc, 4.0 + gc - rc));
  h = torch::fmod(h / 6.0 + 1.0 + shift, 1.0);  // shift in (-0.5, 0.5): stays positive
  auto n = torch::tensor({5.0, 3.0, 1.0}, x.options()).view({1, 3, 1, 1});
  auto k = torch::fmod(n + h * 6.0, 6.0);
  auto m = torch::minimum(k, 4.0 - k).clamp_(0, 1);
  return (maxc - maxc * s * m).clamp_(0, 1);
}

bool Fused(const torch::Tensor& x, OpsPath path) {
  return path == OpsPath::kAuto && x.device().is_cpu();
}

torch::Tensor ApplyJitterOp(int op, const torch::Tensor& x, const std::vector<double>& factors) {
  const torch::Tensor factor = PerSample(factors, x);
  switch (op) {
    case 0:
      return (x * factor).clamp_(0, 1);
    case 1:
      return Blend(x, Luma(x).mean({1, 2, 3}, /*keepdim=*/true), factor);
    case 2:
      return Blend(x, Luma(x), factor);
    default:
      return AdjustHue(x, factor);
  }
}

}  // namespace

double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

CropBox SampleResizedCrop(int64_t height, int64_t width, double scale_min, double scale_max,
                          double ratio_min, double ratio_max, std::mt19937_64& rng) {
  const double area = static_cast<double>(height * width);
  const double log_r0 = std::log(ratio_min), log_r1 = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale_min + (scale_max - scale_min) * Uniform01(rng));
    const double aspect = std::exp(log_r0 + (log_r1 - log_r0) * Uniform01(rng));
    const int64_t w = std::llround(std::sqrt(target * aspect));
    const int64_t h = std::llround(std::sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t i = static_cast<int64_t>(Uniform01(rng) * (height - h + 1));
      const int64_t j = static_cast<int64_t>(Uniform01(rng) * (width - w + 1));
      return {static_cast<double>(i), static_cast<double>(j), static_cast<double>(h),
              static_cast<double>(w)};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio_min) {
    h = std::llround(static_cast<double>(w) / ratio_min);
  } else if (in_ratio > ratio_max) {
    w = std::llround(static_cast<double>(h) * ratio_max);
  }
  return {static_cast<double>((height - h) / 2), static_cast<double>((width - w) / 2),
          static_cast<double>(h), static_cast<double>(w)};
}

torch::Tensor PackCanvas(const std::vector<torch::Tensor>& images) {
  int64_t hmax = 0, wmax = 0;
  bool same = true;
  for (const auto& im : images) {
    same = same && im.size(1) == images[0].size(1) && im.size(2) == images[0].size(2);
    hmax = std::max(hmax, im.size(1));
    wmax = std::max(wmax, im.size(2));
  }
  if (same) return torch::stack(images);
  auto canvas = torch::empty({static_cast<int64_t>(images.size()), images[0].size(0), hmax, wmax},
                             torch::kUInt8);
  for (size_t b = 0; b < images.size(); ++b) {
    const int64_t h = images[b].size(1), w = images[b].size(2);
    auto dst = canvas[b];
    dst.narrow(1, 0, h).narrow(2, 0, w).copy_(images[b]);
    if (w < wmax) dst.narrow(1, 0, h).narrow(2, w, wmax - w).copy_(images[b].narrow(2, w - 1, 1));
    if (h < hmax) dst.narrow(1, h, hmax - h).copy_(dst.narrow(1, h - 1, 1));
  }
  return canvas;
}

torch::Tensor ResizedCrops(const torch::Tensor& canvas_u8, const std::vector<CropBox>& boxes,
                           const std::vector<bool>& flip, int64_t size, Interpolation interpolation,
                           OpsPath path) {
  if (Fused(canvas_u8, path)) return ResizedCropsCpu(canvas_u8, boxes, flip, size, interpolation);
  const torch::Tensor canvas = canvas_u8.to(torch::kFloat32).div_(255.0);
  const int64_t batch = canvas.size(0);
  const double hc = static_cast<double>(canvas.size(2)), wc = static_cast<double>(canvas.size(3));
  // theta maps output coordinates in [-1, 1] to canvas coordinates in [-1, 1]:
  // x_in = a·x_out + c with a = w / Wc and c the box centre, both normalised.
  std::vector<float> theta(batch * 6, 0.0f);
  for (int64_t b = 0; b < batch; ++b) {
    const CropBox& box = boxes[b];
    const double ax = box.width / wc, ay = box.height / hc;
    theta[b * 6 + 0] = static_cast<float>(flip[b] ? -ax : ax);
    theta[b * 6 + 2] = static_cast<float>((2 * box.left + box.width) / wc - 1);
    theta[b * 6 + 4] = static_cast<float>(ay);
    theta[b * 6 + 5] = static_cast<float>((2 * box.top + box.height) / hc - 1);
  }
  auto theta_t = torch::from_blob(theta.data(), {batch, 2, 3}, torch::kFloat32)
                     .to(canvas.device(), canvas.scalar_type());
  auto grid = F::affine_grid(theta_t, {batch, canvas.size(1), size, size},
                             /*align_corners=*/false);
  // The C++ functional options of LibTorch 1.13 lack bicubic; the ATen op has it
  // (interpolation 0 bilinear, 2 bicubic; padding 1 border).
  const int64_t mode = interpolation == Interpolation::kBicubic ? 2 : 0;
  auto out = torch::grid_sampler(canvas, grid, mode, /*padding_mode=*/1, /*align_corners=*/false);
  if (interpolation == Interpolation::kBicubic) out.clamp_(0, 1);
  return out;
}

torch::Tensor Luma(const torch::Tensor& x) {
  if (x.size(1) == 1) return x;
  return 0.299 * x.select(1, 0).unsqueeze(1) + 0.587 * x.select(1, 1).unsqueeze(1) +
         0.114 * x.select(1, 2).unsqueeze(1);
}

torch::Tensor ColorJitter(const torch::Tensor& x, const JitterParams& params, OpsPath path) {
  auto out = x.contiguous().clone();
  if (Fused(x, path)) {
    ColorJitterCpu(out, params);
    return out;
  }
  const bool rgb = x.size(1) == 3;
  const int64_t batch = x.size(0);
  for (int slot = 0; slot < 4; ++slot) {
    for (int op = 0; op < (rgb ? 4 : 2); ++op) {
      std::vector<bool> mask(batch, false);
      std::vector<double> factors;
      for (int64_t b = 0; b < batch; ++b) {
        if (params.apply[b] && params.order[b][slot] == op) {
          mask[b] = true;
          factors.push_back(params.factors[b][op]);
        }
      }
      auto idx = MaskIndices(mask, x.device());
      if (!idx.defined()) continue;
      auto sub = out.index_select(0, idx);
      out.index_copy_(0, idx, ApplyJitterOp(op, sub, factors));
    }
  }
  return out;
}

torch::Tensor RandomGrayscale(const torch::Tensor& x, const std::vector<bool>& mask) {
  if (x.size(1) == 1) return x;
  auto idx = MaskIndices(mask, x.device());
  if (!idx.defined()) return x;
  auto out = x.clone();
  out.index_copy_(0, idx, Luma(out.index_select(0, idx)).expand({-1, 3, -1, -1}));
  return out;
}

int64_t BlurRadius(double sigma, int64_t height, int64_t width) {
  return std::min<int64_t>(static_cast<int64_t>(std::ceil(3 * sigma)), std::min(height, width) - 1);
}

torch::Tensor GaussianBlur(const torch::Tensor& x, const std::vector<double>& sigma, OpsPath path) {
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  std::vector<bool> mask(sigma.size());
  std::vector<double> active;
  std::vector<int64_t> radii;
  int64_t max_radius = 0;
  for (size_t b = 0; b < sigma.size(); ++b) {
    mask[b] = sigma[b] > 0;
    if (mask[b]) {
      active.push_back(sigma[b]);
      radii.push_back(std::max<int64_t>(0, BlurRadius(sigma[b], h, w)));
      max_radius = std::max(max_radius, radii.back());
    }
  }
  if (max_radius <= 0) return x;
  if (Fused(x, path)) {
    auto out = x.contiguous().clone();
    GaussianBlurCpu(out, sigma);
    return out;
  }
  auto idx = MaskIndices(mask, x.device());
  const int64_t n = static_cast<int64_t>(active.size()), k = 2 * max_radius + 1;
  // One normalised 1-D kernel per sample, zero beyond its own radius, repeated for its channels:
  // [n*C, 1, k].
  std::vector<float> weights(n * k, 0.0f);
  for (int64_t s = 0; s < n; ++s) {
    const auto gauss = [&](int64_t t) {
      const double d = static_cast<double>(t - max_radius);
      return std::exp(-d * d / (2 * active[s] * active[s]));
    };
    const int64_t lo = max_radius - radii[s], hi = max_radius + radii[s];
    double total = 0;
    for (int64_t t = lo; t <= hi; ++t) total += gauss(t);
    for (int64_t t = lo; t <= hi; ++t) weights[s * k + t] = static_cast<float>(gauss(t) / total);
  }
  auto kernel = torch::from_blob(weights.data(), {n, 1, k}, torch::kFloat32)
                    .to(x.device(), x.scalar_type())
                    .repeat_interleave(c, 0);
  auto sub = x.index_select(0, idx).reshape({1, n * c, h, w});
  sub = F::pad(
      sub,
      F::PadFuncOptions({max_radius, max_radius, max_radius, max_radius}).mode(torch::kReflect));
  sub = F::conv2d(sub, kernel.view({n * c, 1, k, 1}), F::Conv2dFuncOptions().groups(n * c));
  sub = F::conv2d(sub, kernel.view({n * c, 1, 1, k}), F::Conv2dFuncOptions().groups(n * c));
  auto out = x.clone();
  out.index_copy_(0, idx, sub.view({n, c, h, w}));
  return out;
}

torch::Tensor Solarize(const torch::Tensor& x, const std::vector<bool>& mask) {
  auto idx = MaskIndices(mask, x.device());
  if (!idx.defined()) return x;
  auto out = x.clone();
  auto sub = out.index_select(0, idx);
  out.index_copy_(0, idx, torch::where(sub >= 0.5, 1.0 - sub, sub));
  return out;
}

std::vector<ViewParams> SampleViews(const AugmentOptions& o,
                                    const std::vector<torch::Tensor>& images, uint64_t seed) {
  const int64_t batch = static_cast<int64_t>(images.size());
  std::mt19937_64 rng(seed);
  std::vector<ViewParams> views(o.num_views());
  for (int64_t v = 0; v < o.num_views(); ++v) {
    const ViewOptions& vo = o.view(v);
    ViewParams& p = views[v];
    for (int64_t b = 0; b < batch; ++b) {
      p.boxes.push_back(SampleResizedCrop(images[b].size(1), images[b].size(2), vo.crop_scale_min,
                                          vo.crop_scale_max, o.ratio_min, o.ratio_max, rng));
      p.flip.push_back(Uniform01(rng) < vo.flip_prob);
      p.jitter.apply.push_back(Uniform01(rng) < vo.color_jitter_prob);
      std::array<int, 4> order = {0, 1, 2, 3};
      for (int i = 3; i > 0; --i) {
        std::swap(order[i], order[static_cast<int>(Uniform01(rng) * (i + 1))]);
      }
      p.jitter.order.push_back(order);
      p.jitter.factors.push_back({1 - o.brightness + 2 * o.brightness * Uniform01(rng),
                                  1 - o.contrast + 2 * o.contrast * Uniform01(rng),
                                  1 - o.saturation + 2 * o.saturation * Uniform01(rng),
                                  -o.hue + 2 * o.hue * Uniform01(rng)});
      p.gray.push_back(Uniform01(rng) < vo.grayscale_prob);
      const bool blur = Uniform01(rng) < vo.blur_prob;
      const double sigma =
          o.blur_sigma_min + (o.blur_sigma_max - o.blur_sigma_min) * Uniform01(rng);
      p.sigma.push_back(blur ? sigma : 0.0);
      p.solarize.push_back(Uniform01(rng) < vo.solarization_prob);
    }
  }
  return views;
}

std::vector<torch::Tensor> AugmentViews(const std::vector<torch::Tensor>& images,
                                        const std::vector<ViewParams>& params,
                                        const AugmentOptions& o, const NormalizationStats& stats,
                                        torch::Device device, OpsPath path, BufferPool* pool) {
  torch::NoGradGuard no_grad;
  if (path == OpsPath::kAuto && device.is_cpu()) {
    return MultiCropCpu(images, params, o, stats, pool);
  }
  const int64_t channels = images[0].size(0);
  torch::Tensor canvas = PackCanvas(images);
  if (device.is_cuda()) canvas = canvas.pin_memory().to(device, /*non_blocking=*/true);
  auto mean = torch::tensor(stats.mean, torch::kFloat64)
                  .to(device, torch::kFloat32)
                  .view({1, channels, 1, 1});
  auto inv_std = torch::tensor(stats.std, torch::kFloat64)
                     .reciprocal()
                     .to(device, torch::kFloat32)
                     .view({1, channels, 1, 1});
  std::vector<torch::Tensor> crops;
  crops.reserve(params.size());
  for (size_t v = 0; v < params.size(); ++v) {
    const ViewParams& p = params[v];
    auto x = ResizedCrops(canvas, p.boxes, p.flip, o.view(static_cast<int64_t>(v)).crop_size,
                          o.interpolation, path);
    x = ColorJitter(x, p.jitter, path);
    x = RandomGrayscale(x, p.gray);
    x = GaussianBlur(x, p.sigma, path);
    x = Solarize(x, p.solarize);
    crops.push_back(x.sub_(mean).mul_(inv_std).contiguous());
  }
  return crops;
}

}  // namespace dino::data
