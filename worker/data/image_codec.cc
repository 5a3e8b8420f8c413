#include "worker/data/image_codec.h"

// clang-format off
#include <cstdio>   // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
// clang-format on
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/dino/torch_status.h"

namespace dino::data {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::DataLossError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return bytes;
}

bool IsPng(const std::string& bytes) {
  return bytes.size() >= 8 &&
         png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0;
}

// libjpeg reports fatal errors through error_exit, which must not return: jump back to the
// decode function instead (no C++ object with a destructor lives between setjmp and longjmp).
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void JpegErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (e.g. premature end of data, which libjpeg fills with grey) are counted, not printed;
// any warning marks the file as corrupt.
void JpegCountWarning(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0) ++cinfo->err->num_warnings;
}

// Decodes a JPEG into `out` (HWC, `channels` channels) with a DCT scale of 1/denom. Returns an
// empty string on success, else the codec's message. When header_only, fills dims/channels only.
std::string DecodeJpeg(const std::string& bytes, int channels, int max_short_side, bool header_only,
                       std::vector<uint8_t>* out, int* height, int* width, int* native_channels) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = JpegErrorExit;
  err.mgr.emit_message = JpegCountWarning;
  err.message[0] = '\0';
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return err.message[0] != '\0' ? err.message : "corrupt JPEG";
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  *native_channels = cinfo.num_components == 1 ? 1 : 3;
  *height = static_cast<int>(cinfo.image_height);
  *width = static_cast<int>(cinfo.image_width);
  if (cmyk) {
    jpeg_destroy_decompress(&cinfo);
    return "CMYK JPEG is not supported";
  }
  if (header_only) {
    jpeg_destroy_decompress(&cinfo);
    return "";
  }
  cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  const int short_side = static_cast<int>(std::min(cinfo.image_height, cinfo.image_width));
  int denom = 1;
  while (max_short_side > 0 && denom < 8 && short_side / (denom * 2) >= max_short_side) denom *= 2;
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned>(denom);
  jpeg_start_decompress(&cinfo);
  *height = static_cast<int>(cinfo.output_height);
  *width = static_cast<int>(cinfo.output_width);
  const size_t stride = static_cast<size_t>(cinfo.output_width) * cinfo.output_components;
  out->resize(stride * cinfo.output_height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->data() + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  const bool warned = err.mgr.num_warnings > 0;
  jpeg_destroy_decompress(&cinfo);
  return warned ? "corrupt or truncated JPEG data" : "";
}

// HWC uint8 → CHW uint8 with the short side shrunk to max_short_side.
torch::Tensor ToChw(std::vector<uint8_t> pixels, int height, int width, int channels,
                    int64_t max_short_side) {
  auto hwc = torch::from_blob(pixels.data(), {height, width, channels}, torch::kUInt8);
  // clone, not contiguous(): with one channel the permuted view already counts as contiguous, so
  // contiguous() would return a view of `pixels`, which is freed when this function returns.
  auto chw = hwc.permute({2, 0, 1}).clone(at::MemoryFormat::Contiguous);
  const int64_t short_side = std::min(height, width);
  if (max_short_side <= 0 || short_side <= max_short_side) return chw;
  const double s = static_cast<double>(max_short_side) / static_cast<double>(short_side);
  const int64_t h = height <= width ? max_short_side : std::llround(height * s);
  const int64_t w = width < height ? max_short_side : std::llround(width * s);
  namespace F = torch::nn::functional;
  auto resized =
      F::interpolate(chw.unsqueeze(0).to(torch::kFloat32), F::InterpolateFuncOptions()
                                                               .size(std::vector<int64_t>{h, w})
                                                               .mode(torch::kBilinear)
                                                               .align_corners(false)
                                                               .antialias(true));
  return resized.squeeze(0).round_().clamp_(0, 255).to(torch::kUInt8);
}

}  // namespace

absl::StatusOr<ImageHeader> ReadImageHeader(const std::string& path) {
  DINO_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  ImageHeader header;
  if (IsPng(bytes)) {
    png_image image;
    std::memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
      const std::string msg = image.message;
      png_image_free(&image);
      return absl::DataLossError(absl::StrCat(path, ": corrupt PNG: ", msg));
    }
    header.channels = (image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    header.height = image.height;
    header.width = image.width;
    png_image_free(&image);
    return header;
  }
  std::vector<uint8_t> unused;
  int h = 0, w = 0, c = 0;
  const std::string msg = DecodeJpeg(bytes, 3, 0, /*header_only=*/true, &unused, &h, &w, &c);
  if (!msg.empty()) return absl::DataLossError(absl::StrCat(path, ": not a valid JPEG: ", msg));
  header.channels = c;
  header.height = h;
  header.width = w;
  return header;
}

absl::StatusOr<torch::Tensor> DecodeImage(const std::string& path, int64_t channels,
                                          int64_t max_short_side) {
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("DecodeImage: channels ", channels));
  }
  DINO_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  std::vector<uint8_t> pixels;
  int height = 0, width = 0;
  if (IsPng(bytes)) {
    png_image image;
    std::memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
      const std::string msg = image.message;
      png_image_free(&image);
      return absl::DataLossError(absl::StrCat(path, ": corrupt PNG: ", msg));
    }
    image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    pixels.resize(PNG_IMAGE_SIZE(image));
    // Alpha is composited onto black: the simplified API drops it when the format has none.
    if (!png_image_finish_read(&image, /*background=*/nullptr, pixels.data(), 0, nullptr)) {
      const std::string msg = image.message;
      png_image_free(&image);
      return absl::DataLossError(absl::StrCat(path, ": corrupt PNG: ", msg));
    }
    height = static_cast<int>(image.height);
    width = static_cast<int>(image.width);
  } else {
    int native = 0;
    const std::string msg =
        DecodeJpeg(bytes, static_cast<int>(channels), static_cast<int>(max_short_side),
                   /*header_only=*/false, &pixels, &height, &width, &native);
    if (!msg.empty()) return absl::DataLossError(absl::StrCat(path, ": not a valid JPEG: ", msg));
  }
  if (height <= 0 || width <= 0) return absl::DataLossError(absl::StrCat(path, ": empty image"));
  return TorchCallOr(absl::StrCat("resizing ", path), [&] {
    return ToChw(std::move(pixels), height, width, static_cast<int>(channels), max_short_side);
  });
}

}  // namespace dino::data
