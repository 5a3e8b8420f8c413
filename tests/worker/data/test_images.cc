#include "tests/worker/data/test_images.h"

// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on
#include <png.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"

namespace dino::data::testing {

bool WriteJpeg(const std::string& path, const torch::Tensor& image, int quality) {
  auto hwc = image.permute({1, 2, 0}).contiguous();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = static_cast<JDIMENSION>(image.size(2));
  cinfo.image_height = static_cast<JDIMENSION>(image.size(1));
  cinfo.input_components = static_cast<int>(image.size(0));
  cinfo.in_color_space = image.size(0) == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = static_cast<size_t>(image.size(2) * image.size(0));
  uint8_t* data = hwc.data_ptr<uint8_t>();
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = data + stride * cinfo.next_scanline;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return std::fclose(f) == 0;
}

bool WritePng(const std::string& path, const torch::Tensor& image) {
  auto hwc = image.permute({1, 2, 0}).contiguous();
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.size(2));
  png.height = static_cast<png_uint_32>(image.size(1));
  png.format = image.size(0) == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  return png_image_write_to_file(&png, path.c_str(), 0, hwc.data_ptr<uint8_t>(), 0, nullptr) != 0;
}

bool WriteBytes(const std::string& path, const std::string& bytes) {
  if (absl::EndsWith(path, ".gz")) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (f == nullptr) return false;
    const int n = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    return gzclose(f) == Z_OK && n == static_cast<int>(bytes.size());
  }
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

namespace {
void AppendBigEndian(std::string* s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s->push_back(static_cast<char>((v >> shift) & 0xff));
}
}  // namespace

bool WriteIdxImages(const std::string& path, const torch::Tensor& images) {
  std::string bytes;
  AppendBigEndian(&bytes, 0x00000803u);
  for (int d = 0; d < 3; ++d) AppendBigEndian(&bytes, static_cast<uint32_t>(images.size(d)));
  auto c = images.contiguous();
  bytes.append(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), c.numel());
  return WriteBytes(path, bytes);
}

bool WriteIdxLabels(const std::string& path, const torch::Tensor& labels) {
  std::string bytes;
  AppendBigEndian(&bytes, 0x00000801u);
  AppendBigEndian(&bytes, static_cast<uint32_t>(labels.size(0)));
  auto c = labels.contiguous();
  bytes.append(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), c.numel());
  return WriteBytes(path, bytes);
}

std::string MakeTempDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::filesystem::path base = tmp != nullptr ? tmp : std::filesystem::temp_directory_path();
  std::filesystem::path dir = base / ("dino_data_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace dino::data::testing
