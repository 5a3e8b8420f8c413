// k-NN evaluation of a teacher backbone on a labelled train/test split (docs/dino.md,
// "Evaluation").
//
// The images go through the evaluation transform of the reference: scale the short side to
// image_size / 0.875 and centre-crop image_size (skipped when the image already has that size,
// as for 28-px Fashion-MNIST at image_size 28), then normalise with the dataset statistics. The
// teacher embeds them into L2-normalised CLS features and dino::WeightedKnnTop1 classifies the
// test split (k = 20, T = 0.07 by default).
//
// Thread-safety: free functions; the backbone must not be trained concurrently.
// Failure: INVALID_ARGUMENT for unlabelled datasets or bad options; dataset read errors and
// LibTorch errors are returned as they are.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/data/dataset.h"
#include "worker/dino/knn.h"
#include "worker/dino/vit.h"

namespace dino::run {

struct EvalOptions {
  int64_t image_size = 224;  // The backbone's input resolution.
  int64_t batch_size = 256;
  int64_t max_train = 0;  // Use at most this many training images (evenly spread); 0 = all.
  int64_t max_test = 0;   // Likewise for the test split.
  int64_t k = 20;
  double temperature = 0.07;
  // Called after each embedded batch with (images done, images in all), for progress display.
  std::function<void(int64_t, int64_t)> on_progress;
};

// Float [N, C, image_size, image_size] evaluation inputs for `indices`.
absl::StatusOr<torch::Tensor> EvalImages(const data::Dataset& dataset,
                                         absl::Span<const int64_t> indices,
                                         const data::NormalizationStats& stats, int64_t image_size);

// Teacher k-NN top-1 on (train, test).
absl::StatusOr<KnnResult> EvaluateKnn(VisionTransformer backbone, const data::Dataset& train,
                                      const data::Dataset& test,
                                      const data::NormalizationStats& stats,
                                      const EvalOptions& options, torch::Device device,
                                      bool bf16 = false);

}  // namespace dino::run
