// The checkpoint frame (worker/dino/checkpoint_frame.h). This test links no LibTorch: every
// rejection below happens before a parser could see the payload.
#include "worker/dino/checkpoint_frame.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dino {
namespace {

using ::testing::HasSubstr;

// Stands in for a LibTorch archive; the frame treats the payload as opaque bytes.
constexpr char kPayloadBytes[] = "PK\x03\x04 archive bytes \0 with a zero byte";
const std::string kPayload(kPayloadBytes, sizeof(kPayloadBytes) - 1);

void ExpectCorrupt(const std::string& bytes, const std::string& what) {
  auto payload = UnframeCheckpoint(bytes, "ckpt-under-test");
  ASSERT_FALSE(payload.ok());
  EXPECT_EQ(payload.status().code(), absl::StatusCode::kDataLoss) << payload.status();
  EXPECT_THAT(std::string(payload.status().message()),
              HasSubstr("ckpt-under-test: corrupt checkpoint: "));
  EXPECT_THAT(std::string(payload.status().message()), HasSubstr(what));
}

TEST(CheckpointFrameTest, RoundTripsAndStoresTheSha256OfThePayload) {
  const std::string framed = FrameCheckpoint(kPayload);
  ASSERT_EQ(framed.size(), kCheckpointHeaderSize + kPayload.size());
  EXPECT_EQ(framed.substr(0, 8), "DINOCKPT");
  EXPECT_EQ(framed[8], 2);  // Format version, little-endian.
  EXPECT_EQ(framed[16], static_cast<char>(kPayload.size()));
  EXPECT_EQ(framed.substr(24, 32), absl::HexStringToBytes(Sha256::Of(kPayload)));
  auto payload = UnframeCheckpoint(framed, "x");
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, kPayload);
  EXPECT_TRUE(UnframeCheckpoint(FrameCheckpoint(""), "x").ok());
}

TEST(CheckpointFrameTest, EveryFlippedByteIsRejected) {
  const std::string framed = FrameCheckpoint(kPayload);
  for (size_t i = 0; i < framed.size(); ++i) {
    std::string flipped = framed;
    flipped[i] ^= 0x01;
    EXPECT_FALSE(UnframeCheckpoint(flipped, "x").ok()) << "byte " << i;
  }
  std::string in_payload = framed;
  in_payload[kCheckpointHeaderSize + 5] ^= 0x80;
  ExpectCorrupt(in_payload, "checksum mismatch");
  std::string in_digest = framed;
  in_digest[40] ^= 0x80;
  ExpectCorrupt(in_digest, "checksum mismatch");
}

TEST(CheckpointFrameTest, TruncatedAndPaddedFilesAreRejected) {
  const std::string framed = FrameCheckpoint(kPayload);
  ExpectCorrupt(framed.substr(0, framed.size() - 1),
                "truncated: payload is 36 bytes, header says 37");
  ExpectCorrupt(framed.substr(0, 20), "truncated header: 20 of 56 bytes");
  ExpectCorrupt(framed.substr(0, kCheckpointHeaderSize), "truncated: payload is 0 bytes");
  ExpectCorrupt(framed + "x", "padded: payload is 38 bytes");
}

TEST(CheckpointFrameTest, WrongMagicOldFormatAndUnknownVersionAreRejected) {
  ExpectCorrupt("", "bad magic: not a dinotrain checkpoint (0 bytes)");
  ExpectCorrupt("DINOCKPX" + FrameCheckpoint(kPayload).substr(8), "bad magic");
  ExpectCorrupt(kPayload, "bad magic: a bare LibTorch archive without the dinotrain header");
  ExpectCorrupt("DINOCKP1" + std::string(16, '\0') + kPayload, "format 1 (DINOCKP1");

  std::string v3 = FrameCheckpoint(kPayload);
  v3[8] = 3;
  ExpectCorrupt(v3, "unsupported checkpoint format version 3 (this build reads 2)");
  std::string flagged = FrameCheckpoint(kPayload);
  flagged[12] = 1;
  ExpectCorrupt(flagged, "unknown header flags 1");
  // A huge declared length does not overflow the size check.
  std::string huge = FrameCheckpoint(kPayload);
  for (int i = 16; i < 24; ++i) huge[i] = '\xff';
  ExpectCorrupt(huge, "truncated: payload is 37 bytes, header says 18446744073709551615");
}

}  // namespace
}  // namespace dino
