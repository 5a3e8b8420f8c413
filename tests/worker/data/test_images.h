// Test helpers for worker/data: write JPEG / PNG / IDX files from tensors, and a scratch folder.
//
// Thread-safety: plain functions. Failure: the writers return false on an I/O or codec error.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dino::data::testing {

// image: uint8 [C, H, W] with C = 1 or 3.
bool WriteJpeg(const std::string& path, const torch::Tensor& image, int quality = 95);
bool WritePng(const std::string& path, const torch::Tensor& image);
// Raw (or gzip when path ends in .gz) IDX files: images uint8 [N, H, W], labels uint8 [N].
bool WriteIdxImages(const std::string& path, const torch::Tensor& images);
bool WriteIdxLabels(const std::string& path, const torch::Tensor& labels);
bool WriteBytes(const std::string& path, const std::string& bytes);

// A fresh empty folder under the test's temporary directory.
std::string MakeTempDir(const std::string& name);

}  // namespace dino::data::testing
