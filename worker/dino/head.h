// DINOHead: the projection head (the reference DINOHead).
//
// MLP (nlayers Linear layers with GELU, optional BatchNorm, hidden width, bottleneck), L2
// normalisation, then a weight-normalised Linear(bottleneck, K) without bias. LibTorch has no
// weight_norm helper, so it is written here: weight = g * v / ||v|| per output row, with
// parameters `last_layer.weight_g` [K,1] (starts at 1; frozen when norm_last_layer) and
// `last_layer.weight_v` [K,bottleneck], the names and shapes of torch.nn.utils.weight_norm.
//
// Ownership: a torch::nn module holder, owned by MultiCropWrapper.
// Thread-safety: one thread at a time. Failure: forward throws c10::Error on bad shapes.
#pragma once

#include <torch/torch.h>

#include "worker/dino/config.h"

namespace dino {

// A bias-free Linear whose weight is g * v / ||v||_row.
struct WeightNormLinearImpl : torch::nn::Module {
  WeightNormLinearImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor Weight() const;
  torch::Tensor weight_g, weight_v;
};
TORCH_MODULE(WeightNormLinear);

class DINOHeadImpl : public torch::nn::Module {
 public:
  DINOHeadImpl(int64_t in_dim, const HeadConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Sequential mlp{nullptr};
  WeightNormLinear last_layer{nullptr};
};
TORCH_MODULE(DINOHead);

}  // namespace dino
