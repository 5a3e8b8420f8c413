// UTF-8 validation for text that protobuf will store in `string` fields. proto3 refuses to parse a
// message whose string field holds invalid UTF-8, and gRPC's callback server turns that parse
// failure into a bare UNIMPLEMENTED; checking first lets us say what is wrong and where.
//
// Valid means RFC 3629: shortest-form sequences only, no UTF-16 surrogates (U+D800..U+DFFF), no
// code point above U+10FFFF. (The same rule as protobuf's own check.)
// Thread-safety: stateless functions. Failure: none (a position or nullopt).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace dino {

// Byte offset of the first byte that does not start (or continue) a valid UTF-8 sequence, or
// nullopt when `text` is valid UTF-8.
std::optional<size_t> FindInvalidUtf8(absl::string_view text);

// "byte 0xFF at offset 4" for the first invalid byte (text must be invalid), for messages.
std::string DescribeInvalidUtf8(absl::string_view text, size_t offset);

}  // namespace dino
