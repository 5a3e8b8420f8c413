// Image decoding for image folders: JPEG through libjpeg-turbo, PNG through libpng's simplified
// API, into uint8 [C, H, W] tensors, shrunk on decode so the short side is at most a bound.
//
// JPEGs use the codec's DCT scaling (1/2, 1/4, 1/8) to decode no larger than needed; the final
// resize is an antialiased bilinear interpolation (like torchvision's Resize on tensors with
// antialias) to a short side of exactly `max_short_side`.
//
// Thread-safety: stateless; any number of threads may decode at once.
// Failure: DATA_LOSS "<path>: <reason>" for unreadable, truncated or corrupt files and for
// unsupported formats (e.g. CMYK JPEG); NOT_FOUND for a missing file.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace dino::data {

struct ImageHeader {
  int64_t channels = 0;  // 1 (gray, gray+alpha) or 3 (colour, with or without alpha)
  int64_t height = 0;
  int64_t width = 0;
};

// Reads only the header.
absl::StatusOr<ImageHeader> ReadImageHeader(const std::string& path);

// Decodes to `channels` (1 or 3) channels; max_short_side 0 keeps the native size.
absl::StatusOr<torch::Tensor> DecodeImage(const std::string& path, int64_t channels,
                                          int64_t max_short_side);

}  // namespace dino::data
