#include "server/blob_reader.h"

#include <memory>
#include <string>

#include "common/file_system.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;

class BlobReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::NewTempDir("blob") + "/ckpt-1.ckpt";
    for (int i = 0; i < 3000; ++i) blob_ += static_cast<char>('a' + (i * 7) % 26);
    ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), path_, blob_).ok());
    fs_ = std::make_unique<FaultInjectingFileSystem>(DefaultFileSystem());
  }

  absl::StatusOr<std::unique_ptr<BlobReader>> Open(int64_t offset) {
    return BlobReader::Open(fs_.get(), path_, static_cast<int64_t>(blob_.size()), Sha256::Of(blob_),
                            offset, "checkpoint ckpt-1");
  }

  // Reads to the end in chunks of `chunk`; the first error ends it.
  static absl::StatusOr<std::string> ReadAll(BlobReader& reader, size_t chunk) {
    std::string out;
    while (!reader.done()) {
      absl::StatusOr<std::string> next = reader.Next(chunk);
      if (!next.ok()) return next.status();
      EXPECT_LE(next->size(), chunk);
      out += *next;
    }
    return out;
  }

  std::string path_;
  std::string blob_;
  std::unique_ptr<FaultInjectingFileSystem> fs_;
};

TEST_F(BlobReaderTest, ReadsInChunksFromAnyOffset) {
  for (int64_t offset : {0, 1, 1000, 2999, 3000}) {
    auto reader = Open(offset);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ((*reader)->position(), offset);
    EXPECT_EQ((*reader)->size(), 3000);
    auto rest = ReadAll(**reader, 256);
    ASSERT_TRUE(rest.ok()) << rest.status();
    EXPECT_EQ(*rest, blob_.substr(offset)) << "offset " << offset;
    EXPECT_TRUE((*reader)->done());
    EXPECT_EQ((*reader)->Next(256).value(), "");
  }
}

TEST_F(BlobReaderTest, OffsetOutsideTheBlobIsOutOfRange) {
  EXPECT_EQ(Open(-1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Open(3001).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(BlobReaderTest, CorruptBytesFailTheLastChunkNotTheFirst) {
  std::string tampered = blob_;
  tampered[2000] ^= 1;
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), path_, tampered).ok());
  auto reader = Open(0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  int chunks = 0;
  absl::Status status;
  while (!(*reader)->done()) {
    absl::StatusOr<std::string> next = (*reader)->Next(1000);
    if (!next.ok()) {
      status = next.status();
      break;
    }
    ++chunks;
  }
  EXPECT_EQ(chunks, 2);  // The third and last chunk is withheld.
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("checkpoint ckpt-1"));
  EXPECT_THAT(status.message(), HasSubstr("sha256"));
  // Resuming right at the end still hashes the whole blob first.
  EXPECT_EQ(Open(3000).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(BlobReaderTest, WrongSizeOnDiskIsDataLossAtOpen) {
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), path_, blob_.substr(1)).ok());
  absl::Status status = Open(0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("2999 bytes; its recorded size is 3000"));
}

TEST_F(BlobReaderTest, EmptyBlobIsVerifiedAtOpen) {
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), path_, "").ok());
  auto good = BlobReader::Open(fs_.get(), path_, 0, Sha256::Of(""), 0, "empty");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE((*good)->done());
  EXPECT_EQ(BlobReader::Open(fs_.get(), path_, 0, Sha256::Of("x"), 0, "empty").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(BlobReaderTest, StillReadsTheBlobDeletedAfterOpen) {
  auto reader = Open(0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE(DefaultFileSystem()->DeleteFile(path_).ok());  // Retention ran meanwhile.
  auto all = ReadAll(**reader, 1024);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, blob_);
}

TEST_F(BlobReaderTest, ReadErrorsSurfaceWithTheirStatus) {
  fs_->FailOn("Read", "ckpt-1", absl::UnavailableError("disk went away"), /*skip=*/1);
  auto reader = Open(0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE((*reader)->Next(1000).ok());
  absl::StatusOr<std::string> second = (*reader)->Next(1000);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  fs_->FailOn("NewReadableFile", "ckpt-1", absl::PermissionDeniedError("no"));
  EXPECT_EQ(Open(0).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      BlobReader::Open(DefaultFileSystem(), path_ + ".missing", 1, "", 0, "x").status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dino::server
