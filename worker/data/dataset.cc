// Dataset defaults (GetImages), normalisation estimate and OpenDataset dispatch.
#include "worker/data/dataset.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/dino/torch_status.h"

namespace dino::data {

absl::StatusOr<std::vector<torch::Tensor>> Dataset::GetImages(
    absl::Span<const int64_t> indices) const {
  std::vector<torch::Tensor> out;
  out.reserve(indices.size());
  for (int64_t index : indices) {
    DINO_ASSIGN_OR_RETURN(torch::Tensor image, GetImage(index));
    out.push_back(std::move(image));
  }
  return out;
}

absl::StatusOr<NormalizationStats> EstimateNormalization(const Dataset& dataset,
                                                         int64_t max_samples) {
  const int64_t n = dataset.size();
  if (n <= 0) return absl::InvalidArgumentError(absl::StrCat(dataset.name(), ": empty dataset"));
  const int64_t count = std::max<int64_t>(1, std::min(n, max_samples));
  std::vector<int64_t> indices(count);
  for (int64_t i = 0; i < count; ++i) indices[i] = i * n / count;
  DINO_ASSIGN_OR_RETURN(std::vector<torch::Tensor> images, dataset.GetImages(indices));
  const int64_t c = dataset.channels();
  // Sums in double over every pixel, weighting images by their pixel count.
  std::vector<double> sum(c, 0.0), sum_sq(c, 0.0);
  double pixels = 0;
  DINO_RETURN_IF_ERROR(TorchCall("EstimateNormalization", [&] {
    for (const auto& image : images) {
      auto x = image.to(torch::kFloat64).div_(255.0).reshape({c, -1});
      auto s = x.sum(1), s2 = x.square().sum(1);
      for (int64_t k = 0; k < c; ++k) {
        sum[k] += s[k].item<double>();
        sum_sq[k] += s2[k].item<double>();
      }
      pixels += static_cast<double>(x.size(1));
    }
  }));
  NormalizationStats stats;
  for (int64_t k = 0; k < c; ++k) {
    const double mean = sum[k] / pixels;
    const double var = std::max(0.0, sum_sq[k] / pixels - mean * mean);
    stats.mean.push_back(mean);
    stats.std.push_back(std::max(1e-6, std::sqrt(var)));
  }
  return stats;
}

absl::StatusOr<std::shared_ptr<Dataset>> OpenDataset(const DatasetSpec& spec) {
  switch (spec.kind) {
    case DatasetKind::kIdx:
      return OpenIdxDataset(spec.path, spec.labels_path);
    case DatasetKind::kImageFolder:
      return OpenImageFolder(spec.path, spec.image_folder);
    case DatasetKind::kSynthetic:
      return MakeSyntheticDataset(spec.synthetic);
    case DatasetKind::kUnspecified:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dataset kind ",
                                                 static_cast<int>(spec.kind),
                                                 " (want idx, image_folder or synthetic)"));
}

}  // namespace dino::data
