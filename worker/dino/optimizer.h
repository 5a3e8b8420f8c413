// The student's optimisation pieces: AdamW with DINO's two parameter groups, per-iteration lr and
// weight-decay setting, per-parameter gradient clipping and the last-layer freeze.
//
// Groups (reference get_params_groups): group 0 = trainable parameters with >= 2 dims that are not
// biases (weight decay follows the schedule); group 1 = biases and 1-dim (norm) parameters
// (weight decay 0). Frozen parameters (weight_g with norm_last_layer) are in neither.
//
// Ownership: DinoOptimizer owns the torch AdamW; it holds aliases of the student's parameters,
// whose module the Trainer owns. Thread-safety: one thread at a time.
// Failure: Step/Clip throw c10::Error on device errors (callers use TorchCall); Save/Load use
// torch's archive and throw on a malformed archive.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace dino {

class DinoOptimizer {
 public:
  explicit DinoOptimizer(const torch::nn::Module& student);

  // Trainable parameters in a fixed order (regularized, then not regularized), for GradientSync.
  const std::vector<torch::Tensor>& trainable() const { return trainable_; }

  void SetSchedule(double lr, double weight_decay);
  void ZeroGrad();
  // Scales each gradient so that its own L2 norm is at most `clip` (coef = clip / (norm + 1e-6),
  // applied when < 1). No-op when clip <= 0.
  void ClipPerParameter(double clip);
  // Drops the gradients of head.last_layer.* so AdamW skips them (freeze epochs).
  void CancelLastLayerGradients();
  void Step();

  void Save(torch::serialize::OutputArchive& archive) const;
  void Load(torch::serialize::InputArchive& archive);

 private:
  std::vector<torch::Tensor> trainable_;
  std::vector<torch::Tensor> last_layer_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
};

}  // namespace dino
