// libFuzzer target: the image decoder (worker/data/image_codec.h), JPEG and PNG.
//
// The first input byte picks the channels (1 or 3) and the short-side bound (0 = native, or
// 8..64); the rest is written to a private temporary file (the decoder takes paths) and decoded,
// header first. A Status is fine; a crash, a sanitizer report or a longjmp gone wrong is a bug.
// Decoded images larger than 4096x4096 are not requested: the decoder's job is to refuse bad
// bytes, not to bound memory (ImageFolder's max_short_side does that).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "worker/data/image_codec.h"

namespace {
std::string path;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/dino_fuzz_image_XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) std::abort();
  ::close(fd);
  path = tmpl;
  std::atexit([] { ::unlink(path.c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int64_t channels = (data[0] & 1) != 0 ? 3 : 1;
  const int64_t max_short_side = (data[0] & 2) != 0 ? 8 + (data[0] >> 2) : 0;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      << std::string(reinterpret_cast<const char*>(data + 1), size - 1);
  auto header = dino::data::ReadImageHeader(path);
  if (!header.ok()) return 0;
  if (header->height * header->width > 4096 * 4096) return 0;
  (void)dino::data::DecodeImage(path, channels, max_short_side);
  return 0;
}
