// The checkpoint file's integrity frame: what makes a truncated, bit-rotted or foreign file
// detectable BEFORE LibTorch's archive parser sees a byte of it. LibTorch 1.13's TorchScript
// unpickler can crash the process (SEGV, not an exception) on a mutated archive, which no code of
// ours can catch, so the loader only parses a payload whose SHA-256 matches the header.
//
// Layout (all integers little-endian), kCheckpointHeaderSize = 56 bytes, then the payload:
//   "DINOCKPT"            8 bytes  magic
//   format version        uint32   kCheckpointFormatVersion (2)
//   flags                 uint32   0 (reserved; a non-zero value is refused)
//   payload length        uint64   bytes after the header
//   SHA-256 of payload    32 bytes raw digest
//   payload               a torch::serialize archive (see checkpoint.h)
// Format 1 ("DINOCKP1", FNV-1a-64) and bare LibTorch archives are refused with a message naming
// them; there were no users of either.
//
// This file does not depend on LibTorch (only Abseil and OpenSSL's SHA-256 via common/sha256.h),
// so its tests prove that a rejected file never reaches LibTorch.
// Thread-safety: stateless functions.
// Failure: DATA_LOSS naming the source: "bad magic", "truncated", "padded", "checksum mismatch",
// "unsupported checkpoint format version N", "format 1 ... no longer supported".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dino {

inline constexpr char kCheckpointMagic[] = "DINOCKPT";
inline constexpr uint32_t kCheckpointFormatVersion = 2;
inline constexpr size_t kCheckpointHeaderSize = 8 + 4 + 4 + 8 + 32;

// Wraps an archive payload in the frame (header + payload).
std::string FrameCheckpoint(absl::string_view payload);

// Verifies magic, version, length and SHA-256; returns a view of the payload inside `bytes`.
// Reads nothing but `bytes`; never calls LibTorch.
absl::StatusOr<absl::string_view> UnframeCheckpoint(absl::string_view bytes,
                                                    absl::string_view source);

}  // namespace dino
