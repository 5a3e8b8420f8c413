#include "worker/dino/vit.h"

#include <cmath>

#include "worker/dino/torch_compat.h"

namespace dino {
namespace {

thread_local std::optional<at::Generator> thread_drop_path_generator;

}  // namespace

ScopedDropPathGenerator::ScopedDropPathGenerator(at::Generator generator)
    : previous_(std::move(thread_drop_path_generator)) {
  thread_drop_path_generator = std::move(generator);
}

ScopedDropPathGenerator::~ScopedDropPathGenerator() {
  thread_drop_path_generator = std::move(previous_);
}

torch::Tensor DropPath(const torch::Tensor& x, double drop_prob, bool training,
                       std::optional<at::Generator> generator) {
  if (drop_prob == 0.0 || !training) return x;
  const double keep = 1.0 - drop_prob;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  // Drawn on the CPU from the checkpointed generator, so CPU and CUDA runs draw the same masks.
  torch::Tensor noise =
      generator.has_value()
          ? at::rand(shape, *generator, torch::TensorOptions().dtype(torch::kFloat))
          : torch::rand(shape, torch::TensorOptions().dtype(torch::kFloat));
  torch::Tensor mask = (noise + keep).floor_().to(x.device(), x.scalar_type());
  return x.div(keep) * mask;
}

void TruncNormal_(torch::Tensor& t, double std) {
  // timm's trunc_normal_(t, std=std, a=-2, b=2), which the reference uses: inverse-CDF sampling of
  // a normal restricted to [a, b] (bounds absolute, not in units of std).
  torch::NoGradGuard no_grad;
  const double a = -2.0, b = 2.0;
  auto norm_cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = norm_cdf(a / std), u = norm_cdf(b / std);
  t.uniform_(2.0 * l - 1.0, 2.0 * u - 1.0);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.clamp_(a, b);
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_channels, int64_t dim, int64_t patch_size) {
  proj = register_module(
      "proj",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, dim, patch_size).stride(patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  return proj->forward(x).flatten(2).transpose(1, 2);
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads) : heads(heads) {
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim)));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1), c = x.size(2);
  auto qkv_out = qkv->forward(x).reshape({b, n, 3, heads, c / heads}).permute({2, 0, 3, 1, 4});
  auto out = compat::ScaledDotProductAttention(qkv_out[0], qkv_out[1], qkv_out[2]);
  return proj->forward(out.transpose(1, 2).reshape({b, n, c}));
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2->forward(torch::gelu(fc1->forward(x)));
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, double mlp_ratio, double drop_path)
    : drop_path(drop_path) {
  norm1 =
      register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  attn = register_module("attn", Attention(dim, heads));
  norm2 =
      register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  mlp =
      register_module("mlp", Mlp(dim, static_cast<int64_t>(static_cast<double>(dim) * mlp_ratio)));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, std::optional<at::Generator> generator) {
  auto y = x + DropPath(attn->forward(norm1->forward(x)), drop_path, is_training(), generator);
  return y + DropPath(mlp->forward(norm2->forward(y)), drop_path, is_training(), generator);
}

VisionTransformerImpl::VisionTransformerImpl(const ModelConfig& config, double drop_path_rate)
    : dim_(config.dim), patch_size_(config.patch_size) {
  patch_embed =
      register_module("patch_embed", PatchEmbed(config.in_channels, config.dim, config.patch_size));
  const int64_t grid = config.image_size / config.patch_size;
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, config.dim}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, grid * grid + 1, config.dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  // torch.linspace(0, rate, depth) in float32, as the reference computes the per-block rates.
  auto rates = torch::linspace(0.0, drop_path_rate, config.depth, torch::kFloat);
  for (int64_t i = 0; i < config.depth; ++i) {
    blocks->push_back(Block(config.dim, config.heads, config.mlp_ratio, rates[i].item<float>()));
  }
  norm = register_module("norm",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim}).eps(1e-6)));

  TruncNormal_(pos_embed, 0.02);
  TruncNormal_(cls_token, 0.02);
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      TruncNormal_(linear->weight, 0.02);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* ln = module->as<torch::nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}

torch::Tensor VisionTransformerImpl::InterpolatePosEncoding(int64_t num_patches, int64_t h,
                                                            int64_t w) {
  const int64_t n = pos_embed.size(1) - 1;
  if (num_patches == n && w == h) return pos_embed;
  auto class_pos = pos_embed.select(1, 0);  // [1, dim]
  auto patch_pos = pos_embed.slice(1, 1);
  const int64_t side = static_cast<int64_t>(std::sqrt(static_cast<double>(n)));
  // The reference adds 0.1 to the target grid and passes scale factors (not sizes) to
  // F.interpolate, so the output size is floor(side * scale) and the sampling uses 1/scale.
  const double h0 = static_cast<double>(h / patch_size_) + 0.1;
  const double w0 = static_cast<double>(w / patch_size_) + 0.1;
  const double sqrt_n = std::sqrt(static_cast<double>(n));
  const double scale_h = h0 / sqrt_n, scale_w = w0 / sqrt_n;
  const auto out_h = static_cast<int64_t>(std::floor(static_cast<double>(side) * scale_h));
  const auto out_w = static_cast<int64_t>(std::floor(static_cast<double>(side) * scale_w));
  auto grid = patch_pos.reshape({1, side, side, dim_}).permute({0, 3, 1, 2});
  auto resized =
      at::upsample_bicubic2d(grid, {out_h, out_w}, /*align_corners=*/false, scale_h, scale_w);
  TORCH_CHECK(out_h == h / patch_size_ && out_w == w / patch_size_,
              "position embedding interpolation produced a ", out_h, "x", out_w, " grid for ", h,
              "x", w, " input with patch ", patch_size_);
  auto flat = resized.permute({0, 2, 3, 1}).reshape({1, -1, dim_});
  return torch::cat({class_pos.unsqueeze(0), flat}, 1);
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  auto tokens = patch_embed->forward(x);
  const int64_t b = tokens.size(0);
  tokens = torch::cat({cls_token.expand({b, -1, -1}), tokens}, 1);
  tokens = tokens + InterpolatePosEncoding(tokens.size(1) - 1, h, w);
  const auto& generator =
      thread_drop_path_generator.has_value() ? thread_drop_path_generator : generator_;
  for (const auto& block : *blocks) {
    tokens = block->as<BlockImpl>()->forward(tokens, generator);
  }
  tokens = norm->forward(tokens);
  return tokens.select(1, 0);
}

}  // namespace dino
