// libFuzzer target: the IDX reader (worker/data, OpenIdxDataset) on raw or gzip bytes.
//
// The input is split at its first 0xFF 0xFE pair into an images file and a labels file (no pair:
// images only), written to a private temporary directory (the reader takes paths), opened, and
// every image and label is read. A Status is fine; a crash or a sanitizer report is a bug.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "worker/data/dataset.h"

namespace {

std::string dir;

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/dino_fuzz_idx_XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  dir = tmpl;
  std::atexit([] { std::system(("rm -rf '" + dir + "'").c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find("\xff\xfe");
  const std::string images = dir + "/images";
  const std::string labels = dir + "/labels";
  Write(images, input.substr(0, split));
  if (split != std::string::npos) Write(labels, input.substr(split + 2));
  auto dataset = dino::data::OpenIdxDataset(images, split != std::string::npos ? labels : "");
  if (dataset.ok()) {
    const int64_t n = std::min<int64_t>((*dataset)->size(), 64);
    for (int64_t i = 0; i < n; ++i) {
      (void)(*dataset)->GetImage(i);
      (void)(*dataset)->Label(i);
    }
  }
  return 0;
}
