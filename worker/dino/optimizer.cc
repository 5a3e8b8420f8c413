#include "worker/dino/optimizer.h"

#include "absl/strings/match.h"

namespace dino {

DinoOptimizer::DinoOptimizer(const torch::nn::Module& student) {
  std::vector<torch::Tensor> regularized, not_regularized;
  for (const auto& item : student.named_parameters()) {
    const torch::Tensor& p = item.value();
    if (!p.requires_grad()) continue;
    if (absl::EndsWith(item.key(), ".bias") || p.dim() == 1) {
      not_regularized.push_back(p);
    } else {
      regularized.push_back(p);
    }
    if (absl::StrContains(item.key(), "last_layer")) last_layer_.push_back(p);
  }
  trainable_ = regularized;
  trainable_.insert(trainable_.end(), not_regularized.begin(), not_regularized.end());
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(regularized, std::make_unique<torch::optim::AdamWOptions>(0.0));
  groups.emplace_back(not_regularized, std::make_unique<torch::optim::AdamWOptions>(0.0));
  static_cast<torch::optim::AdamWOptions&>(groups[1].options()).weight_decay(0.0);
  adamw_ = std::make_unique<torch::optim::AdamW>(std::move(groups),
                                                 torch::optim::AdamWOptions(0.0).weight_decay(0.0));
}

void DinoOptimizer::SetSchedule(double lr, double weight_decay) {
  auto& groups = adamw_->param_groups();
  auto& g0 = static_cast<torch::optim::AdamWOptions&>(groups[0].options());
  g0.lr(lr).weight_decay(weight_decay);
  auto& g1 = static_cast<torch::optim::AdamWOptions&>(groups[1].options());
  g1.lr(lr).weight_decay(0.0);
}

void DinoOptimizer::ZeroGrad() {
  for (auto& p : trainable_) p.mutable_grad().reset();
}

void DinoOptimizer::ClipPerParameter(double clip) {
  if (clip <= 0) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (auto& p : trainable_) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return;
  std::vector<torch::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(g.norm(2));
  // One vectorised computation of every coefficient; multiplying by exactly 1 leaves a gradient
  // unchanged, which matches the reference's "scale only when coef < 1".
  auto coefs = (clip / (torch::stack(norms) + 1e-6)).clamp_max(1.0);
  for (size_t i = 0; i < grads.size(); ++i) grads[i].mul_(coefs[i]);
}

void DinoOptimizer::CancelLastLayerGradients() {
  for (auto& p : last_layer_) p.mutable_grad().reset();
}

void DinoOptimizer::Step() { adamw_->step(); }

void DinoOptimizer::Save(torch::serialize::OutputArchive& archive) const { adamw_->save(archive); }

void DinoOptimizer::Load(torch::serialize::InputArchive& archive) {
  adamw_->load(archive);
  // The archive's moments are on the CPU; a CUDA run needs them beside its parameters (all on
  // one device). Iterating the values keeps this independent of the state map's key type, which
  // changed in LibTorch 2.x.
  if (trainable_.empty()) return;
  const torch::Device device = trainable_.front().device();
  for (auto& entry : adamw_->state()) {
    auto& state = static_cast<torch::optim::AdamWParamState&>(*entry.second);
    state.exp_avg(state.exp_avg().to(device));
    state.exp_avg_sq(state.exp_avg_sq().to(device));
    if (state.max_exp_avg_sq().defined()) state.max_exp_avg_sq(state.max_exp_avg_sq().to(device));
  }
}

}  // namespace dino
