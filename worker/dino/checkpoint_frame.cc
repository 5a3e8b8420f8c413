#include "worker/dino/checkpoint_frame.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace dino {
namespace {

constexpr size_t kMagicSize = 8;
constexpr size_t kVersionOffset = kMagicSize;
constexpr size_t kFlagsOffset = kVersionOffset + 4;
constexpr size_t kLengthOffset = kFlagsOffset + 4;
constexpr size_t kDigestOffset = kLengthOffset + 8;
constexpr size_t kDigestSize = 32;
static_assert(kDigestOffset + kDigestSize == kCheckpointHeaderSize);

void PutLittleEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLittleEndian(absl::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return v;
}

std::string RawSha256(absl::string_view data) { return absl::HexStringToBytes(Sha256::Of(data)); }

absl::Status Corrupt(absl::string_view source, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(source, ": corrupt checkpoint: ", what));
}

}  // namespace

std::string FrameCheckpoint(absl::string_view payload) {
  std::string out;
  out.reserve(kCheckpointHeaderSize + payload.size());
  out.append(kCheckpointMagic, kMagicSize);
  PutLittleEndian(&out, kCheckpointFormatVersion, 4);
  PutLittleEndian(&out, 0, 4);
  PutLittleEndian(&out, payload.size(), 8);
  out.append(RawSha256(payload));
  out.append(payload.data(), payload.size());
  return out;
}

absl::StatusOr<absl::string_view> UnframeCheckpoint(absl::string_view bytes,
                                                    absl::string_view source) {
  const absl::string_view magic = bytes.substr(0, kMagicSize);
  if (magic == "DINOCKP1") {
    return Corrupt(source,
                   "format 1 (DINOCKP1, FNV-1a checksum) is no longer supported; it has no "
                   "SHA-256, so it is not loaded (re-run the job without resuming)");
  }
  if (magic != absl::string_view(kCheckpointMagic, kMagicSize)) {
    return Corrupt(source, absl::StrCat(absl::StartsWith(bytes, "PK\x03\x04")
                                            ? "bad magic: a bare LibTorch archive without the "
                                              "dinotrain header, not a dinotrain checkpoint"
                                            : "bad magic: not a dinotrain checkpoint",
                                        " (", bytes.size(), " bytes)"));
  }
  if (bytes.size() < kCheckpointHeaderSize) {
    return Corrupt(source, absl::StrCat("truncated header: ", bytes.size(), " of ",
                                        kCheckpointHeaderSize, " bytes"));
  }
  const uint64_t version = GetLittleEndian(bytes.substr(kVersionOffset), 4);
  if (version != kCheckpointFormatVersion) {
    return Corrupt(source, absl::StrCat("unsupported checkpoint format version ", version,
                                        " (this build reads ", kCheckpointFormatVersion, ")"));
  }
  const uint64_t flags = GetLittleEndian(bytes.substr(kFlagsOffset), 4);
  if (flags != 0) return Corrupt(source, absl::StrCat("unknown header flags ", flags));
  const uint64_t length = GetLittleEndian(bytes.substr(kLengthOffset), 8);
  const uint64_t have = bytes.size() - kCheckpointHeaderSize;
  if (have != length) {
    return Corrupt(source, absl::StrCat(have < length ? "truncated" : "padded", ": payload is ",
                                        have, " bytes, header says ", length));
  }
  const absl::string_view payload = bytes.substr(kCheckpointHeaderSize);
  if (RawSha256(payload) != bytes.substr(kDigestOffset, kDigestSize)) {
    return Corrupt(source, "checksum mismatch (SHA-256 of the payload differs from the header)");
  }
  return payload;
}

}  // namespace dino
