// DownloadCheckpoint over gRPC: a blob of several chunks streams chunk by chunk, resumes at an
// offset, and a blob corrupted on the coordinator's disk ends in DATA_LOSS before its last chunk.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/file_system.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_service.h"
#include "tests/server/grpc_service_fixture.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

struct Download {
  std::vector<int64_t> offsets;  // Of each chunk received.
  std::string bytes;
  std::string sha256;  // From the first chunk's info.
  grpc::Status status;
};

class GrpcDownloadTest : public GrpcServiceTest {
 protected:
  // A running job whose worker uploaded `blob_` as its checkpoint at step 10.
  void SetUp() override {
    GrpcServiceTest::SetUp();
    job_ = Submit(testing::TinySpec());
    const std::string worker = StartAttempt();
    // Two and a half chunks.
    for (size_t i = 0; blob_.size() < kCheckpointChunkBytes * 5 / 2; ++i) {
      blob_ += static_cast<char>(i * 131 % 251);
    }
    dino::v1::UploadCheckpointResponse uploaded;
    grpc::Status status = Upload(worker, job_, 10, blob_, Sha256::Of(blob_), /*send_sha=*/true,
                                 &uploaded, /*chunk_bytes=*/64 << 10);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  Download Get(int64_t offset) {
    grpc::ClientContext context;
    dino::v1::DownloadCheckpointRequest request;
    request.set_job_id(job_);
    request.set_offset(offset);
    auto reader = jobs_->DownloadCheckpoint(&context, request);
    Download out;
    dino::v1::DownloadCheckpointResponse chunk;
    while (reader->Read(&chunk)) {
      if (chunk.has_info()) out.sha256 = chunk.info().sha256();
      out.offsets.push_back(chunk.offset());
      out.bytes += chunk.data();
    }
    out.status = reader->Finish();
    return out;
  }

  std::string BlobPath() {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir_)) {
      if (entry.path().extension() == ".ckpt") return entry.path().string();
    }
    ADD_FAILURE() << "no .ckpt under " << data_dir_;
    return "";
  }

  std::string job_;
  std::string blob_;
};

TEST_F(GrpcDownloadTest, StreamsChunkByChunkAndResumesAtAnOffset) {
  const int64_t chunk = static_cast<int64_t>(kCheckpointChunkBytes);
  Download all = Get(0);
  ASSERT_TRUE(all.status.ok()) << all.status.error_message();
  EXPECT_EQ(all.offsets, (std::vector<int64_t>{0, chunk, 2 * chunk}));
  EXPECT_EQ(all.bytes, blob_);
  EXPECT_EQ(all.sha256, Sha256::Of(blob_));

  Download rest = Get(chunk + 5);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  EXPECT_EQ(rest.offsets, (std::vector<int64_t>{chunk + 5, 2 * chunk + 5}));
  EXPECT_EQ(rest.bytes, blob_.substr(chunk + 5));

  Download none = Get(static_cast<int64_t>(blob_.size()));
  ASSERT_TRUE(none.status.ok()) << none.status.error_message();
  EXPECT_EQ(none.offsets.size(), 1u);  // The info alone.
  EXPECT_EQ(none.sha256, Sha256::Of(blob_));
  EXPECT_EQ(Get(static_cast<int64_t>(blob_.size()) + 1).status.error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
}

TEST_F(GrpcDownloadTest, BlobCorruptedOnDiskEndsInDataLossBeforeItsLastChunk) {
  std::string tampered = blob_;
  tampered[tampered.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), BlobPath(), tampered).ok());
  Download got = Get(0);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(got.status.error_message(), ::testing::HasSubstr("sha256"));
  EXPECT_EQ(got.offsets.size(), 2u);
  EXPECT_LT(got.bytes.size(), blob_.size());

  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), BlobPath(), blob_.substr(1)).ok());
  got = Get(0);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(got.offsets.empty());
}

}  // namespace
}  // namespace dino::server
