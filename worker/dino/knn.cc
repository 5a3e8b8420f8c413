#include "worker/dino/knn.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/dino/torch_compat.h"
#include "worker/dino/torch_status.h"

namespace dino {
namespace {

// Restores the module's training flag on scope exit.
class EvalModeScope {
 public:
  explicit EvalModeScope(torch::nn::Module& m) : module_(m), was_training_(m.is_training()) {
    module_.eval();
  }
  ~EvalModeScope() { module_.train(was_training_); }

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace

absl::StatusOr<torch::Tensor> Embed(VisionTransformer backbone, const BatchSource& next_batch,
                                    torch::Device device, bool bf16) {
  EvalModeScope eval(*backbone);
  std::vector<torch::Tensor> features;
  while (true) {
    DINO_ASSIGN_OR_RETURN(std::optional<torch::Tensor> batch, next_batch());
    if (!batch.has_value()) break;
    DINO_ASSIGN_OR_RETURN(torch::Tensor f, TorchCallOr("embedding a batch", [&] {
                            torch::NoGradGuard no_grad;
                            compat::AutocastGuard autocast(device, bf16);
                            auto out = backbone->forward(batch->to(device, torch::kFloat));
                            return torch::nn::functional::normalize(
                                       out.to(torch::kFloat),
                                       torch::nn::functional::NormalizeFuncOptions().dim(1))
                                .to(torch::kCPU);
                          }));
    features.push_back(std::move(f));
  }
  if (features.empty()) {
    return torch::zeros({0, backbone->dim()});
  }
  return TorchCallOr("concatenating features", [&] { return torch::cat(features, 0); });
}

absl::StatusOr<torch::Tensor> Embed(VisionTransformer backbone, const torch::Tensor& images,
                                    int64_t batch_size, torch::Device device, bool bf16) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Embed: batch_size must be >= 1, got ", batch_size));
  }
  if (images.dim() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("Embed: images must be [N, C, H, W], got ", images.dim(), " dims"));
  }
  int64_t start = 0;
  const int64_t n = images.size(0);
  BatchSource source = [&]() -> absl::StatusOr<std::optional<torch::Tensor>> {
    if (start >= n) return std::optional<torch::Tensor>();
    const int64_t end = std::min(n, start + batch_size);
    auto batch = images.slice(0, start, end);
    start = end;
    return std::optional<torch::Tensor>(batch);
  };
  return Embed(std::move(backbone), source, device, bf16);
}

absl::StatusOr<KnnResult> WeightedKnnTop1(const torch::Tensor& train_features,
                                          const torch::Tensor& train_labels,
                                          const torch::Tensor& test_features,
                                          const torch::Tensor& test_labels, int64_t num_classes,
                                          int64_t k, double temperature, int64_t chunk) {
  if (train_features.dim() != 2 || test_features.dim() != 2 ||
      train_features.size(1) != test_features.size(1)) {
    return absl::InvalidArgumentError("k-NN: features must be [N, D] with the same D");
  }
  if (train_labels.dim() != 1 || train_labels.size(0) != train_features.size(0) ||
      test_labels.dim() != 1 || test_labels.size(0) != test_features.size(0)) {
    return absl::InvalidArgumentError("k-NN: labels must be [N] matching the features");
  }
  if (num_classes < 1 || k < 1 || chunk < 1 || train_features.size(0) == 0) {
    return absl::InvalidArgumentError(
        "k-NN: num_classes, k and chunk must be >= 1 and the training set non-empty");
  }
  DINO_ASSIGN_OR_RETURN(const bool labels_in_range, TorchCallOr("k-NN: labels", [&] {
                          const auto y = train_labels.to(torch::kLong);
                          return y.min().item<int64_t>() >= 0 &&
                                 y.max().item<int64_t>() < num_classes;
                        }));
  if (!labels_in_range) {
    return absl::InvalidArgumentError(
        absl::StrCat("k-NN: training labels outside [0, ", num_classes, ")"));
  }
  return TorchCallOr("k-NN", [&] {
    torch::NoGradGuard no_grad;
    const auto train_t = train_features.to(torch::kFloat).t().contiguous();  // [D, Ntrain]
    const auto train_y = train_labels.to(torch::kLong);
    const int64_t kk = std::min<int64_t>(k, train_features.size(0));
    KnnResult result;
    result.total = test_features.size(0);
    for (int64_t start = 0; start < result.total; start += chunk) {
      const int64_t end = std::min(result.total, start + chunk);
      auto feats = test_features.slice(0, start, end).to(torch::kFloat);
      auto targets = test_labels.slice(0, start, end).to(torch::kLong);
      auto similarity = torch::mm(feats, train_t);
      auto [distances, indices] = similarity.topk(kk, /*dim=*/1, /*largest=*/true, /*sorted=*/true);
      auto neighbours = train_y.index_select(0, indices.reshape({-1})).reshape(indices.sizes());
      auto votes = torch::zeros({end - start, num_classes}, torch::kFloat);
      votes.scatter_add_(1, neighbours, distances.div(temperature).exp());
      auto predictions = votes.argmax(1);
      result.correct += predictions.eq(targets).sum().item<int64_t>();
    }
    result.top1 = result.total == 0 ? 0.0
                                    : 100.0 * static_cast<double>(result.correct) /
                                          static_cast<double>(result.total);
    return result;
  });
}

}  // namespace dino
