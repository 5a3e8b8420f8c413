// Evaluation: embedding with the teacher backbone and the weighted k-NN classifier
// (docs/dino.md, "Evaluation"; the reference eval_knn.py).
//
// Embed runs the backbone in eval mode under NoGradGuard (and bf16 autocast on CUDA when asked)
// in batches and returns L2-normalised CLS features on the CPU. WeightedKnnTop1 compares each test
// feature with every training feature by cosine similarity (dot product of normalised features),
// keeps the top k, lets each neighbour vote exp(sim / T) for its class and counts top-1 hits; it
// processes the test set in chunks so memory stays O(chunk × train).
//
// Thread-safety: call from the thread that owns the module.
// Failure: INVALID_ARGUMENT for mismatched shapes or labels out of range; LibTorch errors via
// TorchCall; a batch source's error is returned as it is.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "worker/dino/vit.h"

namespace dino {

// images: [N, C, H, W] float (normalised). Returns [N, dim] float32 CPU features.
absl::StatusOr<torch::Tensor> Embed(VisionTransformer backbone, const torch::Tensor& images,
                                    int64_t batch_size, torch::Device device, bool bf16 = false);

// Pulls batches from `next_batch` until it returns std::nullopt.
using BatchSource = std::function<absl::StatusOr<std::optional<torch::Tensor>>()>;
absl::StatusOr<torch::Tensor> Embed(VisionTransformer backbone, const BatchSource& next_batch,
                                    torch::Device device, bool bf16 = false);

struct KnnResult {
  double top1 = 0;  // Percent, 0..100.
  int64_t correct = 0;
  int64_t total = 0;
};

// Features [N, D] (L2-normalised), labels [N] int64 in [0, num_classes).
absl::StatusOr<KnnResult> WeightedKnnTop1(const torch::Tensor& train_features,
                                          const torch::Tensor& train_labels,
                                          const torch::Tensor& test_features,
                                          const torch::Tensor& test_labels, int64_t num_classes,
                                          int64_t k = 20, double temperature = 0.07,
                                          int64_t chunk = 256);

}  // namespace dino
