#include "worker/run/evaluate.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/dino/torch_status.h"

namespace dino::run {
namespace {

// Evenly spread indices: all of them when max is 0 or not smaller than size.
std::vector<int64_t> Subset(int64_t size, int64_t max) {
  std::vector<int64_t> out;
  const int64_t n = (max <= 0 || max >= size) ? size : max;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.push_back(n == size ? i : i * size / n);
  return out;
}

absl::Status CheckLabelled(const data::Dataset& d, const char* which) {
  if (!d.has_labels() || d.num_classes() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("k-NN evaluation needs labels, but the ", which, " split ", d.name(),
                     " has none"));
  }
  if (d.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the ", which, " split ", d.name(),
                                                   " is empty"));
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> Labels(const data::Dataset& d, const std::vector<int64_t>& idx) {
  std::vector<int64_t> labels;
  labels.reserve(idx.size());
  for (int64_t i : idx) {
    std::optional<int64_t> l = d.Label(i);
    if (!l.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(d.name(), ": image ", i, " has no label"));
    }
    labels.push_back(*l);
  }
  return torch::tensor(labels, torch::kLong);
}

// Calls `fn(batch_indices)` for consecutive batches of `idx`.
template <typename Fn>
absl::Status ForBatches(const std::vector<int64_t>& idx, int64_t batch_size, Fn fn) {
  for (size_t start = 0; start < idx.size(); start += batch_size) {
    const size_t end = std::min(idx.size(), start + static_cast<size_t>(batch_size));
    DINO_RETURN_IF_ERROR(fn(absl::MakeConstSpan(idx.data() + start, end - start)));
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const EvalOptions& o) {
  if (o.image_size < 1 || o.batch_size < 1 || o.k < 1 || !(o.temperature > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad k-NN options: image_size ", o.image_size, ", batch_size ", o.batch_size,
                     ", k ", o.k, ", temperature ", o.temperature));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<torch::Tensor> EvalImages(const data::Dataset& dataset,
                                         absl::Span<const int64_t> indices,
                                         const data::NormalizationStats& stats,
                                         int64_t image_size) {
  DINO_ASSIGN_OR_RETURN(std::vector<torch::Tensor> images, dataset.GetImages(indices));
  if (stats.mean.size() != static_cast<size_t>(dataset.channels()) ||
      stats.std.size() != stats.mean.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("normalisation has ", stats.mean.size(), " channels, dataset ",
                     dataset.name(), " has ", dataset.channels()));
  }
  return TorchCallOr("preparing evaluation images", [&] {
    std::vector<torch::Tensor> out;
    out.reserve(images.size());
    namespace F = torch::nn::functional;
    for (const torch::Tensor& img : images) {
      torch::Tensor x = img.to(torch::kFloat).div(255.0).unsqueeze(0);
      const int64_t h = x.size(2), w = x.size(3);
      if (h != image_size || w != image_size) {
        // Reference eval transform: Resize(short side = size / 0.875), CenterCrop(size).
        const double short_side = std::round(static_cast<double>(image_size) / 0.875);
        const double scale = short_side / static_cast<double>(std::min(h, w));
        const int64_t nh = std::max<int64_t>(image_size, std::lround(h * scale));
        const int64_t nw = std::max<int64_t>(image_size, std::lround(w * scale));
        x = F::interpolate(x, F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{nh, nw})
                                  .mode(torch::kBicubic)
                                  .align_corners(false))
                .clamp(0.0, 1.0);
        const int64_t top = (nh - image_size) / 2, left = (nw - image_size) / 2;
        x = x.slice(2, top, top + image_size).slice(3, left, left + image_size);
      }
      out.push_back(x);
    }
    torch::Tensor batch = torch::cat(out, 0);
    auto mean = torch::tensor(std::vector<double>(stats.mean), torch::kFloat).view({1, -1, 1, 1});
    auto std = torch::tensor(std::vector<double>(stats.std), torch::kFloat).view({1, -1, 1, 1});
    return ((batch - mean) / std).contiguous();
  });
}

absl::StatusOr<KnnResult> EvaluateKnn(VisionTransformer backbone, const data::Dataset& train,
                                      const data::Dataset& test,
                                      const data::NormalizationStats& stats,
                                      const EvalOptions& options, torch::Device device,
                                      bool bf16) {
  DINO_RETURN_IF_ERROR(CheckOptions(options));
  DINO_RETURN_IF_ERROR(CheckLabelled(train, "train"));
  DINO_RETURN_IF_ERROR(CheckLabelled(test, "test"));
  const std::vector<int64_t> train_idx = Subset(train.size(), options.max_train);
  const std::vector<int64_t> test_idx = Subset(test.size(), options.max_test);
  const int64_t total = static_cast<int64_t>(train_idx.size() + test_idx.size());
  int64_t done = 0;

  auto embed = [&](const data::Dataset& d,
                   const std::vector<int64_t>& idx) -> absl::StatusOr<torch::Tensor> {
    std::vector<torch::Tensor> features;
    DINO_RETURN_IF_ERROR(ForBatches(idx, options.batch_size, [&](absl::Span<const int64_t> b) {
      DINO_ASSIGN_OR_RETURN(torch::Tensor x, EvalImages(d, b, stats, options.image_size));
      DINO_ASSIGN_OR_RETURN(torch::Tensor f,
                            Embed(backbone, x, options.batch_size, device, bf16));
      features.push_back(f);
      done += static_cast<int64_t>(b.size());
      if (options.on_progress) options.on_progress(done, total);
      return absl::OkStatus();
    }));
    return TorchCallOr("concatenating features", [&] { return torch::cat(features, 0); });
  };
  DINO_ASSIGN_OR_RETURN(torch::Tensor train_f, embed(train, train_idx));
  DINO_ASSIGN_OR_RETURN(torch::Tensor test_f, embed(test, test_idx));
  DINO_ASSIGN_OR_RETURN(torch::Tensor train_l, Labels(train, train_idx));
  DINO_ASSIGN_OR_RETURN(torch::Tensor test_l, Labels(test, test_idx));
  const int64_t classes = std::max(train.num_classes(), test.num_classes());
  return WeightedKnnTop1(train_f, train_l, test_f, test_l, classes, options.k,
                         options.temperature);
}

}  // namespace dino::run
