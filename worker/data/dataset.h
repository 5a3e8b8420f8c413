// Dataset: the read-only image source behind every dinotrain data path (IDX files, image folders,
// synthetic shapes), plus the factories that open one and the normalisation statistics.
//
// Ownership: a Dataset owns its decoded or mapped data; callers share it via std::shared_ptr.
// Thread-safety: every const method, GetImage and GetImages included, is safe to call from many
// threads at once (the loader's prefetch threads do).
// Failure: opening returns a Status naming the file and the reason (NOT_FOUND for a missing path,
// INVALID_ARGUMENT / DATA_LOSS for bad content). GetImage returns OUT_OF_RANGE for a bad index,
// DATA_LOSS for a corrupt file that callers may skip, and FAILED_PRECONDITION once a dataset has
// seen more corrupt files than it tolerates.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/path_confinement.h"
#include "spec/defaults.h"

namespace dino::data {

// Per-channel mean and standard deviation of pixel values scaled to [0, 1].
struct NormalizationStats {
  std::vector<double> mean;
  std::vector<double> std;
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  virtual int64_t channels() const = 0;
  // Native resolution. For variable-size datasets (fixed_size() false) these are the bound on the
  // short side; individual images may be larger along their long side.
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  virtual bool fixed_size() const { return true; }

  // uint8 [C, H, W] on the CPU. The tensor may share storage with the dataset: do not write to it.
  virtual absl::StatusOr<torch::Tensor> GetImage(int64_t index) const = 0;
  // Many images at once; implementations may decode them in parallel. Fails on the first error.
  virtual absl::StatusOr<std::vector<torch::Tensor>> GetImages(
      absl::Span<const int64_t> indices) const;

  virtual bool has_labels() const = 0;
  virtual std::optional<int64_t> Label(int64_t index) const = 0;
  // 0 when unlabelled.
  virtual int64_t num_classes() const = 0;

  // Corrupt files met so far (skipped at open or failed at decode); 0 for in-memory datasets.
  virtual int64_t corrupt_files() const { return 0; }

  // A short description for logs, e.g. "idx:/path/train-images-idx3-ubyte.gz".
  virtual std::string name() const = 0;
};

// Estimates per-channel mean/std from up to `max_samples` images spread evenly over the dataset.
absl::StatusOr<NormalizationStats> EstimateNormalization(const Dataset& dataset,
                                                         int64_t max_samples = 2000);

// MNIST / Fashion-MNIST IDX files, gzip-compressed or raw (detected by content). `labels_path`
// may be empty. The images are read into memory once.
absl::StatusOr<std::shared_ptr<Dataset>> OpenIdxDataset(const std::string& images_path,
                                                        const std::string& labels_path = "");

struct ImageFolderOptions {
  // Images are shrunk on decode so that their short side is at most this (0: keep native size).
  int64_t max_short_side = spec::kJobSpecDefaults.data.max_short_side;
  // Decoding threads used by GetImages and by the header scan at open.
  int threads = 4;
  // Corrupt files tolerated (skipped and counted) before the dataset fails.
  int64_t max_corrupt = spec::kJobSpecDefaults.data.max_corrupt;
  // 0: infer from the files, which must all agree; 1 or 3: convert every image to that.
  int64_t channels = 0;
  // When confined (the worker's --data-roots), every file is resolved (symlinks followed) at open
  // and one that lands outside the roots is skipped and counted like a corrupt file, its message
  // naming the roots; the others are read through their resolved paths, so a link swapped later
  // does not redirect a read.
  PathConfinement roots = PathConfinement::Unconfined();
};

// The ImageNet layout: root/<class>/<image>.{jpg,jpeg,png}; classes sorted by name get labels
// 0..K-1. Empty class folders are allowed and keep their label; an empty root fails.
absl::StatusOr<std::shared_ptr<Dataset>> OpenImageFolder(const std::string& root,
                                                         const ImageFolderOptions& options = {});

// The job spec's data.synthetic_images, synthetic_image_size and synthetic_classes, and their
// defaults.
struct SyntheticOptions {
  int64_t size = spec::kJobSpecDefaults.data.synthetic_images;
  int64_t channels = 3;
  int64_t resolution = spec::kJobSpecDefaults.data.synthetic_image_size;
  int64_t num_classes = spec::kJobSpecDefaults.data.synthetic_classes;
  uint64_t seed = spec::kJobSpecDefaults.seed;
};

// Procedural shapes (one shape family and colour per class) at random positions and sizes on a
// textured background. Images are rendered on demand, deterministically from (seed, index).
absl::StatusOr<std::shared_ptr<Dataset>> MakeSyntheticDataset(const SyntheticOptions& options);

// The job spec's dataset kinds (data.kind), value for value; kUnspecified opens nothing.
enum class DatasetKind {
  kUnspecified = 0,
  kIdx = 1,          // path = images file; labels_path optional.
  kImageFolder = 2,  // path = root folder.
  kSynthetic = 3,    // path ignored; synthetic options used.
};

// Opens a dataset by kind, for job specs.
struct DatasetSpec {
  DatasetKind kind = DatasetKind::kUnspecified;
  std::string path;
  std::string labels_path;
  ImageFolderOptions image_folder;
  SyntheticOptions synthetic;
};
absl::StatusOr<std::shared_ptr<Dataset>> OpenDataset(const DatasetSpec& spec);

}  // namespace dino::data
