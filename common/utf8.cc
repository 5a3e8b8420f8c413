#include "common/utf8.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dino {

std::optional<size_t> FindInvalidUtf8(absl::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // Range of the second byte.
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;  // No overlong 3-byte forms.
    } else if (c >= 0xE1 && c <= 0xEC) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;  // No surrogates.
    } else if (c >= 0xEE && c <= 0xEF) {
      len = 3;
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;  // No overlong 4-byte forms.
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;  // Nothing above U+10FFFF.
    } else {
      return i;  // A continuation byte, C0/C1 (overlong) or F5..FF.
    }
    if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::nullopt;
}

std::string DescribeInvalidUtf8(absl::string_view text, size_t offset) {
  if (offset >= text.size()) return absl::StrCat("offset ", offset);
  return absl::StrFormat("byte 0x%02X at offset %d", static_cast<unsigned char>(text[offset]),
                         offset);
}

}  // namespace dino
