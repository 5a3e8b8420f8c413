#include "server/checkpoint_registry.h"

#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

class CheckpointRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("ckpt");
    auto store = OpenSqliteStore(dir_ + "/db");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    fs_ = std::make_unique<FaultInjectingFileSystem>(DefaultFileSystem());
    registry_ = std::make_unique<CheckpointRegistry>(store_.get(), fs_.get(), dir_ + "/blobs");
    ASSERT_TRUE(registry_->Recover().ok());
  }

  absl::StatusOr<dino::v1::CheckpointInfo> Upload(int64_t step, const std::string& data,
                                                  std::optional<double> knn = std::nullopt,
                                                  std::string sha = "", int64_t size = -1) {
    dino::v1::CheckpointInfo info;
    info.set_job_id("job-1");
    info.set_step(step);
    info.set_size_bytes(size >= 0 ? size : static_cast<int64_t>(data.size()));
    if (knn.has_value()) info.set_knn_top1(*knn);
    auto upload = registry_->BeginUpload(info);
    if (!upload.ok()) return upload.status();
    // Two chunks, as a stream would send them.
    absl::Status status = (*upload)->Append(data.substr(0, data.size() / 2));
    if (status.ok()) status = (*upload)->Append(data.substr(data.size() / 2));
    if (!status.ok()) {
      registry_->Abandon(std::move(*upload));
      return status;
    }
    return registry_->Commit(std::move(*upload), sha.empty() ? Sha256::Of(data) : sha);
  }

  size_t FilesIn(const std::string& job) {
    auto files = DefaultFileSystem()->ListDir(dir_ + "/blobs/" + job);
    return files.ok() ? files->size() : 0;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FaultInjectingFileSystem> fs_;
  std::unique_ptr<CheckpointRegistry> registry_;
};

TEST_F(CheckpointRegistryTest, NewJobDirectoryIsSyncedIntoTheBlobDirectoryFirst) {
  // The first SyncDir under blobs/ must be blobs/ itself, when job-1/ is created: before the fix
  // the first one was job-1/ at the commit, after the blob's rename.
  fs_->FailOn("SyncDir", dir_ + "/blobs", absl::DataLossError("injected sync failure"), 0, 1);
  dino::v1::CheckpointInfo info;
  info.set_job_id("job-1");
  info.set_step(1);
  info.set_size_bytes(4);
  auto upload = registry_->BeginUpload(info);
  EXPECT_EQ(upload.status().code(), absl::StatusCode::kDataLoss) << upload.status();
  fs_->ClearFaults();
  auto committed = Upload(1, "data");
  ASSERT_TRUE(committed.ok()) << committed.status();
  // The directory exists now: a second job directory is synced, not this one again.
  fs_->FailOn("SyncDir", dir_ + "/blobs", absl::DataLossError("injected sync failure"), 0, 1);
  info.set_step(2);
  EXPECT_TRUE(registry_->BeginUpload(info).ok());
}

TEST_F(CheckpointRegistryTest, CommittedUploadIsListedAndReadsBackVerified) {
  auto info = Upload(100, "checkpoint bytes");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->sha256(), Sha256::Of("checkpoint bytes"));
  EXPECT_EQ(info->size_bytes(), 16);
  auto latest = registry_->Resolve("job-1", "latest");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->info.id(), info->id());
  auto reader = registry_->OpenBlob(*latest, 0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto bytes = (*reader)->Next(1 << 20);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "checkpoint bytes");
  EXPECT_TRUE((*reader)->done());
}

TEST_F(CheckpointRegistryTest, Sha256KnownAnswer) {
  EXPECT_EQ(Sha256::Of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(CheckpointRegistryTest, CorruptUploadIsRejectedAndNeverBecomesLatest) {
  ASSERT_TRUE(Upload(100, "good").ok());
  auto bad = Upload(200, "corrupted", std::nullopt, Sha256::Of("something else"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(registry_->Resolve("job-1", "latest")->info.step(), 100);
  EXPECT_EQ(FilesIn("job-1"), 1u);  // No temporary file left behind.
}

TEST_F(CheckpointRegistryTest, TruncatedAndOversizedUploadsAreRejected) {
  auto truncated = Upload(100, "short", std::nullopt, "", /*size=*/50);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos);
  auto oversized = Upload(100, "longer than announced", std::nullopt, "", /*size=*/4);
  EXPECT_EQ(oversized.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(registry_->Resolve("job-1", "latest").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(FilesIn("job-1"), 0u);
}

TEST_F(CheckpointRegistryTest, ResentUploadReturnsTheExistingCheckpoint) {
  auto first = Upload(100, "same");
  auto second = Upload(100, "same");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->id(), second->id());
  EXPECT_EQ(registry_->List("job-1")->size(), 1u);
}

TEST_F(CheckpointRegistryTest, RetentionKeepsLastNAndTheBest) {
  ASSERT_TRUE(Upload(1, "a", 50.0).ok());
  ASSERT_TRUE(Upload(2, "b", 80.0).ok());  // The best.
  ASSERT_TRUE(Upload(3, "c", 60.0).ok());
  ASSERT_TRUE(Upload(4, "d").ok());
  ASSERT_TRUE(Upload(5, "e").ok());
  auto deleted = registry_->ApplyRetention("job-1", /*keep_last=*/2, /*keep_best=*/1);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->size(), 2u);
  auto left = registry_->List("job-1");
  ASSERT_EQ(left->size(), 3u);
  EXPECT_EQ((*left)[0].step(), 2);
  EXPECT_EQ((*left)[1].step(), 4);
  EXPECT_EQ((*left)[2].step(), 5);
  EXPECT_EQ(registry_->Resolve("job-1", "best")->info.step(), 2);
  EXPECT_EQ(FilesIn("job-1"), 3u);
}

TEST_F(CheckpointRegistryTest, CrashBetweenBlobDeletionAndRowIsFinishedOnRecovery) {
  ASSERT_TRUE(Upload(1, "a").ok());
  ASSERT_TRUE(Upload(2, "b").ok());
  // The process "dies" when it tries to delete the blob: the row is marked, the blob remains.
  fs_->FailOn("DeleteFile", ".ckpt", absl::InternalError("injected crash"));
  EXPECT_FALSE(registry_->ApplyRetention("job-1", 1, 0).ok());
  EXPECT_EQ(registry_->List("job-1")->size(), 1u);  // The marked one is no longer listed.
  EXPECT_EQ(store_->ListCheckpoints("job-1", true)->size(), 2u);
  fs_->ClearFaults();
  CheckpointRegistry restarted(store_.get(), fs_.get(), dir_ + "/blobs");
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_EQ(store_->ListCheckpoints("job-1", true)->size(), 1u);
  EXPECT_EQ(FilesIn("job-1"), 1u);
  EXPECT_EQ(restarted.Resolve("job-1", "latest")->info.step(), 2);
}

TEST_F(CheckpointRegistryTest, CrashBeforeTheRenameLeavesNothingListed) {
  fs_->FailOn("RenameFile", "ckpt-", absl::InternalError("injected crash"));
  EXPECT_FALSE(Upload(1, "a").ok());
  fs_->ClearFaults();
  EXPECT_TRUE(registry_->List("job-1")->empty());
  EXPECT_EQ(FilesIn("job-1"), 0u);
}

TEST_F(CheckpointRegistryTest, BlobWithoutRowIsRemovedOnRecovery) {
  // A crash after the rename but before the row insert leaves an unreferenced blob.
  ASSERT_TRUE(Upload(1, "a").ok());
  ASSERT_TRUE(
      WriteFileAtomically(DefaultFileSystem(), dir_ + "/blobs/job-1/ckpt-99.ckpt", "x").ok());
  EXPECT_EQ(FilesIn("job-1"), 2u);
  ASSERT_TRUE(registry_->Recover().ok());
  EXPECT_EQ(FilesIn("job-1"), 1u);
  EXPECT_EQ(registry_->List("job-1")->size(), 1u);
}

// Rows name blobs relative to the registry's dir: a restart with the data dir spelled another way
// (trailing slash, "./", a symlink standing for a new mount point) removes nothing and serves the
// same bytes.
TEST_F(CheckpointRegistryTest, DataDirSpelledAnotherWayFindsTheSameBlobs) {
  ASSERT_TRUE(Upload(1, "first").ok());
  ASSERT_TRUE(Upload(2, "second").ok());
  EXPECT_EQ(store_->ListCheckpoints("job-1", false)->front().blob_path,
            absl::StrCat("job-1/", store_->ListCheckpoints("job-1", false)->front().info.id(),
                         ".ckpt"));
  const std::string link = dir_ + "/mounted-elsewhere";
  ASSERT_EQ(symlink((dir_ + "/blobs").c_str(), link.c_str()), 0);
  for (const std::string& spelling : {dir_ + "/blobs/", dir_ + "/./blobs", link}) {
    CheckpointRegistry restarted(store_.get(), fs_.get(), spelling);
    ASSERT_TRUE(restarted.Recover().ok()) << spelling;
    EXPECT_EQ(FilesIn("job-1"), 2u) << spelling;
    auto latest = restarted.Resolve("job-1", "latest");
    ASSERT_TRUE(latest.ok());
    EXPECT_EQ(latest->blob_path, absl::StrCat("job-1/", latest->info.id(), ".ckpt"));
    auto reader = restarted.OpenBlob(*latest, 0);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ(*(*reader)->Next(1 << 20), "second") << spelling;
  }
}

// A store that names none of the blobs in the directory (a wrong --data-dir, a database from
// elsewhere) makes Recover refuse and delete nothing; one blob without a row (the crash between
// the rename and the insert) is still cleaned up, as is a ".ckpt" file no row can mean.
TEST_F(CheckpointRegistryTest, RecoveryThatWouldRemoveMoreThanItKeepsRefuses) {
  ASSERT_TRUE(Upload(1, "a").ok());
  ASSERT_TRUE(Upload(2, "b").ok());
  ASSERT_TRUE(Upload(3, "c").ok());
  auto empty_store = OpenSqliteStore(":memory:");
  ASSERT_TRUE(empty_store.ok());
  CheckpointRegistry foreign(empty_store->get(), fs_.get(), dir_ + "/blobs");
  const absl::Status refused = foreign.Recover();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("would remove 3 checkpoint files that no row of the store "
                                   "names and keep only 0"),
            std::string::npos)
      << refused;
  EXPECT_EQ(FilesIn("job-1"), 3u);
  // The real store still names all three: nothing to remove, nothing refused.
  ASSERT_TRUE(registry_->Recover().ok());
  EXPECT_EQ(FilesIn("job-1"), 3u);
}

// A ".ckpt" file named after a row's id is never deleted, even where the row does not expect it.
TEST_F(CheckpointRegistryTest, FileNamedAfterARowIsNeverDeleted) {
  auto info = Upload(1, "a");
  ASSERT_TRUE(info.ok());
  const std::string elsewhere = absl::StrCat(dir_, "/blobs/job-9/", info->id(), ".ckpt");
  ASSERT_TRUE(DefaultFileSystem()->CreateDirs(dir_ + "/blobs/job-9").ok());
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), elsewhere, "a").ok());
  ASSERT_TRUE(registry_->Recover().ok());
  EXPECT_EQ(FilesIn("job-9"), 1u);
  EXPECT_EQ(FilesIn("job-1"), 1u);
}

TEST_F(CheckpointRegistryTest, BlobCorruptedOnDiskIsNotServed) {
  auto info = Upload(1, "original");
  ASSERT_TRUE(info.ok());
  auto stored = registry_->Resolve("job-1", "latest");
  ASSERT_TRUE(
      WriteFileAtomically(DefaultFileSystem(), registry_->BlobPath(*stored), "tampered").ok());
  auto reader = registry_->OpenBlob(*stored, 0);  // Same size: only the sha256 tells.
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->Next(1 << 20).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), registry_->BlobPath(*stored), "short").ok());
  EXPECT_EQ(registry_->OpenBlob(*stored, 0).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace dino::server
