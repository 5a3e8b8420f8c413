#include "worker/dino/head.h"

#include "worker/dino/vit.h"

namespace dino {

WeightNormLinearImpl::WeightNormLinearImpl(int64_t in, int64_t out) {
  // nn.Linear's default init for v; weight_norm would set g = ||v||, and DINO then fills g with 1.
  torch::nn::Linear init(torch::nn::LinearOptions(in, out).bias(false));
  weight_g = register_parameter("weight_g", torch::ones({out, 1}));
  weight_v = register_parameter("weight_v", init->weight.detach().clone());
}

torch::Tensor WeightNormLinearImpl::Weight() const {
  return weight_v * (weight_g / weight_v.norm(2, {1}, /*keepdim=*/true));
}

torch::Tensor WeightNormLinearImpl::forward(const torch::Tensor& x) {
  return torch::nn::functional::linear(x, Weight());
}

DINOHeadImpl::DINOHeadImpl(int64_t in_dim, const HeadConfig& config) {
  mlp = register_module("mlp", torch::nn::Sequential());
  const int64_t nlayers = std::max<int64_t>(config.nlayers, 1);
  if (nlayers == 1) {
    mlp->push_back(torch::nn::Linear(in_dim, config.bottleneck_dim));
  } else {
    mlp->push_back(torch::nn::Linear(in_dim, config.hidden_dim));
    if (config.use_bn) mlp->push_back(torch::nn::BatchNorm1d(config.hidden_dim));
    mlp->push_back(torch::nn::GELU());
    for (int64_t i = 0; i < nlayers - 2; ++i) {
      mlp->push_back(torch::nn::Linear(config.hidden_dim, config.hidden_dim));
      if (config.use_bn) mlp->push_back(torch::nn::BatchNorm1d(config.hidden_dim));
      mlp->push_back(torch::nn::GELU());
    }
    mlp->push_back(torch::nn::Linear(config.hidden_dim, config.bottleneck_dim));
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& module : mlp->modules(/*include_self=*/false)) {
      if (auto* linear = module->as<torch::nn::Linear>()) {
        TruncNormal_(linear->weight, 0.02);
        if (linear->bias.defined()) linear->bias.zero_();
      }
    }
  }
  last_layer =
      register_module("last_layer", WeightNormLinear(config.bottleneck_dim, config.out_dim));
  if (config.norm_last_layer) last_layer->weight_g.set_requires_grad(false);
}

torch::Tensor DINOHeadImpl::forward(const torch::Tensor& x) {
  auto y = mlp->forward(x);
  y = torch::nn::functional::normalize(y,
                                       torch::nn::functional::NormalizeFuncOptions().dim(-1).p(2));
  return last_layer->forward(y);
}

}  // namespace dino
