// IDX (MNIST / Fashion-MNIST) reader. zlib's gz* functions read gzip and raw files alike; the whole
// file is read into memory and checked against the header's dimensions.
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/data/dataset.h"

namespace dino::data {
namespace {

absl::StatusOr<std::string> ReadMaybeGzip(const std::string& path) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open: ", std::strerror(err)));
  }
  probe.close();
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open"));
  std::string out;
  char buf[1 << 16];
  while (true) {
    const int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int errnum = 0;
      const std::string msg = gzerror(f, &errnum);
      gzclose(f);
      return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data: ", msg));
    }
    if (n == 0) break;
    out.append(buf, n);
  }
  int errnum = 0;
  const std::string msg = gzerror(f, &errnum);
  gzclose(f);
  if (errnum != Z_OK && errnum != Z_STREAM_END) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt or truncated gzip data: ", msg));
  }
  return out;
}

uint32_t BigEndian32(const std::string& s, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct IdxArray {
  std::vector<int64_t> dims;
  std::string bytes;  // the whole file; data starts at data_offset
  size_t data_offset = 0;
};

// Parses an unsigned-byte IDX file with `want_dims` dimensions.
absl::StatusOr<IdxArray> ReadIdx(const std::string& path, int want_dims) {
  IdxArray a;
  DINO_ASSIGN_OR_RETURN(a.bytes, ReadMaybeGzip(path));
  if (a.bytes.size() < 4) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated IDX header (", a.bytes.size(), " bytes)"));
  }
  const uint32_t magic = BigEndian32(a.bytes, 0);
  const uint32_t want_magic = 0x00000800u | static_cast<uint32_t>(want_dims);
  if (magic != want_magic) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": wrong IDX magic 0x", absl::Hex(magic, absl::kZeroPad8),
                     ", expected 0x", absl::Hex(want_magic, absl::kZeroPad8)));
  }
  a.data_offset = 4 + 4 * static_cast<size_t>(want_dims);
  if (a.bytes.size() < a.data_offset) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX header"));
  }
  const uint64_t have = a.bytes.size() - a.data_offset;
  uint64_t count = 1;
  for (int d = 0; d < want_dims; ++d) {
    const uint32_t dim = BigEndian32(a.bytes, 4 + 4 * d);
    if (dim == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": dimension ", d, " is 0"));
    // Checked before multiplying: three 32-bit dimensions overflow 64 bits (found by fuzz_idx).
    if (count > have / dim) {
      return absl::DataLossError(absl::StrCat(path, ": truncated IDX data: header dimensions ",
                                              "promise more than the file's ", have, " bytes"));
    }
    a.dims.push_back(dim);
    count *= dim;
  }
  if (have != count) {
    return absl::DataLossError(absl::StrCat(path, ": ", have < count ? "truncated" : "oversized",
                                            " IDX data: header promises ", count,
                                            " bytes, file has ", have));
  }
  return a;
}

class IdxDataset final : public Dataset {
 public:
  IdxDataset(std::string name, torch::Tensor images, torch::Tensor labels, int64_t num_classes)
      : name_(std::move(name)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        num_classes_(num_classes) {}

  int64_t size() const override { return images_.size(0); }
  int64_t channels() const override { return 1; }
  int64_t height() const override { return images_.size(2); }
  int64_t width() const override { return images_.size(3); }
  absl::StatusOr<torch::Tensor> GetImage(int64_t index) const override {
    if (index < 0 || index >= size()) {
      return absl::OutOfRangeError(absl::StrCat(name_, ": index ", index, " out of range"));
    }
    return images_[index];
  }
  bool has_labels() const override { return labels_.defined(); }
  std::optional<int64_t> Label(int64_t index) const override {
    if (!labels_.defined() || index < 0 || index >= size()) return std::nullopt;
    return labels_.data_ptr<uint8_t>()[index];
  }
  int64_t num_classes() const override { return num_classes_; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  torch::Tensor images_;  // uint8 [N, 1, H, W]
  torch::Tensor labels_;  // uint8 [N] or undefined
  int64_t num_classes_;
};

torch::Tensor CopyBytes(const IdxArray& a, std::vector<int64_t> shape) {
  auto t = torch::empty(shape, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), a.bytes.data() + a.data_offset, t.numel());
  return t;
}

}  // namespace

absl::StatusOr<std::shared_ptr<Dataset>> OpenIdxDataset(const std::string& images_path,
                                                        const std::string& labels_path) {
  DINO_ASSIGN_OR_RETURN(IdxArray images, ReadIdx(images_path, 3));
  const int64_t n = images.dims[0];
  torch::Tensor image_tensor = CopyBytes(images, {n, 1, images.dims[1], images.dims[2]});
  images.bytes.clear();
  torch::Tensor label_tensor;
  int64_t num_classes = 0;
  if (!labels_path.empty()) {
    DINO_ASSIGN_OR_RETURN(IdxArray labels, ReadIdx(labels_path, 1));
    if (labels.dims[0] != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          labels_path, ": ", labels.dims[0], " labels for ", n, " images in ", images_path));
    }
    label_tensor = CopyBytes(labels, {n});
    num_classes = label_tensor.max().item<int64_t>() + 1;
  }
  return std::shared_ptr<Dataset>(
      std::make_shared<IdxDataset>(absl::StrCat("idx:", images_path), std::move(image_tensor),
                                   std::move(label_tensor), num_classes));
}

}  // namespace dino::data
