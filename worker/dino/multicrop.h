// MultiCropWrapper: backbone + head over a list of crops (the reference MultiCropWrapper).
//
// Consecutive crops of the same resolution are concatenated and go through the backbone in one
// pass per resolution; the head then runs once on all CLS features. The output rows are ordered
// crop by crop: rows [i*B, (i+1)*B) belong to crops[i]. Parameter names: backbone.*, head.*.
//
// Ownership: a torch::nn module holder, owned by the Trainer (one for the student, one for the
// teacher). Thread-safety: one thread at a time. Failure: throws c10::Error on mismatched shapes.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "worker/dino/config.h"
#include "worker/dino/head.h"
#include "worker/dino/vit.h"

namespace dino {

class MultiCropWrapperImpl : public torch::nn::Module {
 public:
  MultiCropWrapperImpl(const TrainConfig& config, double drop_path_rate);
  // crops[i]: [B, C, H_i, W_i]. Returns head outputs [n * B, K].
  torch::Tensor forward(const std::vector<torch::Tensor>& crops);
  // Backbone CLS features of all crops, [n * B, dim], one backbone pass per resolution.
  torch::Tensor Features(const std::vector<torch::Tensor>& crops);

  VisionTransformer backbone{nullptr};
  DINOHead head{nullptr};
};
TORCH_MODULE(MultiCropWrapper);

// Reference FLOPs (multiply-add = 2) of one backbone forward on a [C, size, size] image.
double BackboneForwardFlops(const ModelConfig& model, int64_t size);
// FLOPs of one head forward on one feature vector.
double HeadForwardFlops(const ModelConfig& model, const HeadConfig& head);

}  // namespace dino
