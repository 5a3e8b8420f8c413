// VisionTransformer: the DINO backbone (the reference implementation's vision_transformer.py).
//
// Patch embedding (conv, kernel = stride = patch), CLS token, learned position embeddings
// interpolated bicubically for other grids exactly as the reference `interpolate_pos_encoding`
// (scale factors (g + 0.1) / sqrt(N), so the source coordinates follow the scale factor, not the
// size ratio), `depth` pre-norm blocks with drop-path, final LayerNorm; the output is the CLS
// token. Parameter names equal the reference state-dict keys (cls_token, pos_embed,
// patch_embed.proj.weight, blocks.0.norm1.weight, blocks.0.attn.qkv.weight, ..., norm.weight).
//
// Ownership: a torch::nn module holder; the owner (MultiCropWrapper / Trainer) keeps it.
// Drop-path draws from a generator set with set_drop_path_generator (CPU, owned by the caller,
// checkpointed by the Trainer) so a run is reproducible and resumable.
// Thread-safety: like any torch module: one thread at a time.
// Failure: forward throws c10::Error on bad shapes; callers wrap it in TorchCall.
#pragma once

#include <torch/torch.h>

#include <optional>

#include "worker/dino/config.h"

namespace dino {

// Stochastic depth per sample (the reference drop_path): x / keep * floor(keep + U[0,1)).
torch::Tensor DropPath(const torch::Tensor& x, double drop_prob, bool training,
                       std::optional<at::Generator> generator);

// Reference init: timm's trunc_normal_ of `std` with absolute bounds [-2, 2] (inverse CDF).
void TruncNormal_(torch::Tensor& t, double std);

struct PatchEmbedImpl : torch::nn::Module {
  PatchEmbedImpl(int64_t in_channels, int64_t dim, int64_t patch_size);
  torch::Tensor forward(const torch::Tensor& x);  // [B,C,H,W] -> [B, H/p*W/p, dim]
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t heads;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t dim, int64_t heads, double mlp_ratio, double drop_path);
  torch::Tensor forward(const torch::Tensor& x, std::optional<at::Generator> generator);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  double drop_path;
};
TORCH_MODULE(Block);

class VisionTransformerImpl : public torch::nn::Module {
 public:
  // `drop_path_rate` overrides config.drop_path_rate (the teacher uses 0).
  VisionTransformerImpl(const ModelConfig& config, double drop_path_rate);

  // [B, C, H, W] -> CLS features [B, dim].
  torch::Tensor forward(const torch::Tensor& x);
  // Position embeddings for an input of spatial size h x w (the reference's w, h order).
  torch::Tensor InterpolatePosEncoding(int64_t num_patches, int64_t h, int64_t w);

  void set_drop_path_generator(std::optional<at::Generator> g) { generator_ = std::move(g); }
  int64_t dim() const { return dim_; }

  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token, pos_embed;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  int64_t dim_;
  int64_t patch_size_;
  std::optional<at::Generator> generator_;
};
TORCH_MODULE(VisionTransformer);

// While alive, the drop-path masks of every VisionTransformer forward on this thread are drawn
// from `generator` instead of the module's own. The Trainer's micro-batch threads (micro_batch.h)
// each draw from a generator of their own, so that the masks do not depend on thread timing.
// Not copyable; construct and destroy on the same thread.
class ScopedDropPathGenerator {
 public:
  explicit ScopedDropPathGenerator(at::Generator generator);
  ~ScopedDropPathGenerator();
  ScopedDropPathGenerator(const ScopedDropPathGenerator&) = delete;
  ScopedDropPathGenerator& operator=(const ScopedDropPathGenerator&) = delete;

 private:
  std::optional<at::Generator> previous_;
};

}  // namespace dino
