// Image folder dataset (ImageNet layout). Opening lists root/<class>/<file> and reads every
// header on the thread pool: files whose header is corrupt are skipped and counted, and the
// channel count is inferred (or the requested one is used). Images are decoded on demand.
//
// A file that passes the header scan but fails to decode later is counted as corrupt too.
// GetImage reports it as DATA_LOSS; GetImages (what the loader uses) replaces it by the next
// decodable image of the dataset so that one bad file does not stop training. Past
// `max_corrupt` corrupt files in total, both fail with FAILED_PRECONDITION.
//
// With ImageFolderOptions.roots confined, a file (or a class folder) that is a symlink resolving
// outside the roots is skipped and counted like a corrupt file, and its message says so.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <system_error>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "worker/data/dataset.h"
#include "worker/data/image_codec.h"
#include "worker/data/thread_pool.h"

namespace dino::data {
namespace {

namespace fs = std::filesystem;

bool IsImageFile(const fs::path& p) {
  const std::string ext = absl::AsciiStrToLower(p.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

class ImageFolderDataset final : public Dataset {
 public:
  ImageFolderDataset(std::string root, ImageFolderOptions options, std::vector<std::string> files,
                     std::vector<int64_t> labels, int64_t num_classes, int64_t channels,
                     int64_t bound, int64_t corrupt_at_open)
      : root_(std::move(root)),
        options_(options),
        files_(std::move(files)),
        labels_(std::move(labels)),
        num_classes_(num_classes),
        channels_(channels),
        bound_(bound),
        pool_(std::make_unique<ThreadPool>(options.threads)),
        corrupt_at_open_(corrupt_at_open) {}

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t channels() const override { return channels_; }
  int64_t height() const override { return bound_; }
  int64_t width() const override { return bound_; }
  bool fixed_size() const override { return false; }
  bool has_labels() const override { return true; }
  std::optional<int64_t> Label(int64_t index) const override {
    if (index < 0 || index >= size()) return std::nullopt;
    return labels_[index];
  }
  int64_t num_classes() const override { return num_classes_; }
  std::string name() const override { return absl::StrCat("image_folder:", root_); }
  int64_t corrupt_files() const override {
    absl::MutexLock lock(&mu_);
    return corrupt_at_open_ + static_cast<int64_t>(bad_.size());
  }

  absl::StatusOr<torch::Tensor> GetImage(int64_t index) const override {
    if (index < 0 || index >= size()) {
      return absl::OutOfRangeError(absl::StrCat(name(), ": index ", index, " out of range"));
    }
    DINO_RETURN_IF_ERROR(CheckBudget());
    absl::StatusOr<torch::Tensor> image =
        DecodeImage(files_[index], channels_, options_.max_short_side);
    if (!image.ok() && absl::IsDataLoss(image.status())) {
      DINO_RETURN_IF_ERROR(RecordCorrupt(index, image.status()));
    }
    return image;
  }

  absl::StatusOr<std::vector<torch::Tensor>> GetImages(
      absl::Span<const int64_t> indices) const override {
    std::vector<absl::StatusOr<torch::Tensor>> results(indices.size());
    pool_->ParallelFor(static_cast<int64_t>(indices.size()),
                       [&](int64_t i) { results[i] = GetImage(indices[i]); });
    std::vector<torch::Tensor> out;
    out.reserve(indices.size());
    for (size_t i = 0; i < indices.size(); ++i) {
      if (results[i].ok()) {
        out.push_back(*std::move(results[i]));
        continue;
      }
      if (!absl::IsDataLoss(results[i].status())) return results[i].status();
      // Substitute the next decodable image; every failure is counted, so this ends at the limit.
      absl::StatusOr<torch::Tensor> substitute = results[i].status();
      for (int64_t j = indices[i] + 1; !substitute.ok(); ++j) {
        if (!absl::IsDataLoss(substitute.status()) || j > indices[i] + size()) {
          return substitute.status();
        }
        substitute = GetImage(j % size());
      }
      out.push_back(*std::move(substitute));
    }
    return out;
  }

 private:
  absl::Status CheckBudget() const {
    absl::MutexLock lock(&mu_);
    const int64_t total = corrupt_at_open_ + static_cast<int64_t>(bad_.size());
    if (total > options_.max_corrupt) {
      return absl::FailedPreconditionError(
          absl::StrCat(name(), ": ", total, " corrupt files, more than the ", options_.max_corrupt,
                       " tolerated; last: ", last_error_));
    }
    return absl::OkStatus();
  }

  absl::Status RecordCorrupt(int64_t index, const absl::Status& error) const {
    {
      absl::MutexLock lock(&mu_);
      bad_.insert(index);
      last_error_ = std::string(error.message());
    }
    return CheckBudget();
  }

  const std::string root_;
  const ImageFolderOptions options_;
  const std::vector<std::string> files_;
  const std::vector<int64_t> labels_;
  const int64_t num_classes_;
  const int64_t channels_;
  const int64_t bound_;
  const std::unique_ptr<ThreadPool> pool_;
  const int64_t corrupt_at_open_;
  mutable absl::Mutex mu_;
  mutable std::set<int64_t> bad_ ABSL_GUARDED_BY(mu_);
  mutable std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::shared_ptr<Dataset>> OpenImageFolder(const std::string& root,
                                                         const ImageFolderOptions& options) {
  if (options.channels != 0 && options.channels != 1 && options.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(root, ": channels must be 0 (infer), 1 or 3, got ", options.channels));
  }
  std::error_code ec;
  if (!fs::exists(root, ec)) return absl::NotFoundError(absl::StrCat(root, ": no such folder"));
  if (!fs::is_directory(root, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(root, ": not a folder"));
  }
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory()) classes.push_back(entry.path().filename().string());
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat(root, ": cannot list: ", ec.message()));
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(root, ": no class folders (want root/<class>/<image>)"));
  }
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (size_t k = 0; k < classes.size(); ++k) {
    std::vector<std::string> in_class;
    for (const auto& entry : fs::directory_iterator(fs::path(root) / classes[k], ec)) {
      if (entry.is_regular_file() && IsImageFile(entry.path())) {
        in_class.push_back(entry.path().string());
      }
    }
    std::sort(in_class.begin(), in_class.end());
    for (auto& f : in_class) {
      files.push_back(std::move(f));
      labels.push_back(static_cast<int64_t>(k));
    }
  }
  if (files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(root, ": no .jpg/.jpeg/.png images in ", classes.size(), " class folders"));
  }

  std::vector<absl::StatusOr<ImageHeader>> headers(files.size());
  {
    ThreadPool pool(options.threads);
    pool.ParallelFor(static_cast<int64_t>(files.size()), [&](int64_t i) {
      if (options.roots.confined()) {
        absl::StatusOr<std::string> resolved = options.roots.Check("image file", files[i]);
        if (!resolved.ok()) {
          headers[i] = absl::DataLossError(absl::StrCat(resolved.status().message(), "; skipped"));
          return;
        }
        files[i] = *std::move(resolved);  // Read what was checked.
      }
      headers[i] = ReadImageHeader(files[i]);
    });
  }
  std::vector<std::string> good_files;
  std::vector<int64_t> good_labels;
  std::vector<std::string> corrupt;
  int64_t channels = options.channels, max_short = 0;
  std::string first_file_of[4];
  for (size_t i = 0; i < files.size(); ++i) {
    if (!headers[i].ok()) {
      if (!absl::IsDataLoss(headers[i].status())) return headers[i].status();
      corrupt.push_back(std::string(headers[i].status().message()));
      continue;
    }
    const ImageHeader& h = *headers[i];
    if (first_file_of[h.channels].empty()) first_file_of[h.channels] = files[i];
    max_short = std::max(max_short, std::min(h.height, h.width));
    good_files.push_back(files[i]);
    good_labels.push_back(labels[i]);
  }
  if (static_cast<int64_t>(corrupt.size()) > options.max_corrupt) {
    corrupt.resize(std::min<size_t>(corrupt.size(), 3));
    return absl::FailedPreconditionError(
        absl::StrCat(root, ": more than ", options.max_corrupt,
                     " corrupt files; first: ", absl::StrJoin(corrupt, "; ")));
  }
  if (good_files.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(root, ": no decodable images"));
  }
  if (channels == 0) {
    if (!first_file_of[1].empty() && !first_file_of[3].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(root, ": mixed channel counts: ", first_file_of[1], " has 1 channel, ",
                       first_file_of[3], " has 3 (set ImageFolderOptions.channels to convert)"));
    }
    channels = first_file_of[1].empty() ? 3 : 1;
  }
  const int64_t bound =
      options.max_short_side > 0 ? std::min(options.max_short_side, max_short) : max_short;
  return std::shared_ptr<Dataset>(std::make_shared<ImageFolderDataset>(
      root, options, std::move(good_files), std::move(good_labels),
      static_cast<int64_t>(classes.size()), channels, bound, static_cast<int64_t>(corrupt.size())));
}

}  // namespace dino::data
