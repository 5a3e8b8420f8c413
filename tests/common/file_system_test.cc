#include "common/file_system.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace dino {
namespace {

class FileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dino_fs_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(FileSystemTest, AtomicWriteReadBackAndListing) {
  FileSystem* fs = DefaultFileSystem();
  const std::string path = dir_ + "/a.bin";
  ASSERT_TRUE(WriteFileAtomically(fs, path, std::string("hello\0world", 11)).ok());
  absl::StatusOr<std::string> data = fs->ReadFile(path);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, std::string("hello\0world", 11));
  EXPECT_EQ(*fs->FileSize(path), 11u);
  // No temporary file is left behind.
  EXPECT_EQ(*fs->ListDir(dir_), std::vector<std::string>{"a.bin"});
}

TEST_F(FileSystemTest, ErrorsNameThePathAndMapErrno) {
  FileSystem* fs = DefaultFileSystem();
  absl::StatusOr<std::string> missing = fs->ReadFile(dir_ + "/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir_ + "/nope"), std::string::npos);
  EXPECT_EQ(fs->DeleteFile(dir_ + "/nope").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomically(fs, dir_ + "/file", "x").ok());
  EXPECT_FALSE(fs->CreateDirs(dir_ + "/file").ok());
}

TEST_F(FileSystemTest, CreateDirsIsRecursiveAndIdempotent) {
  FileSystem* fs = DefaultFileSystem();
  ASSERT_TRUE(fs->CreateDirs(dir_ + "/x/y/z").ok());
  ASSERT_TRUE(fs->CreateDirs(dir_ + "/x/y/z").ok());
  EXPECT_TRUE(fs->Exists(dir_ + "/x/y/z"));
}

TEST_F(FileSystemTest, FailedRenameKeepsOldContentAndRemovesTemporary) {
  FaultInjectingFileSystem fs(DefaultFileSystem());
  const std::string path = dir_ + "/ckpt";
  ASSERT_TRUE(WriteFileAtomically(&fs, path, "old").ok());
  fs.FailOn("RenameFile", "ckpt", absl::InternalError("injected crash"));
  absl::Status s = WriteFileAtomically(&fs, path, "new");
  EXPECT_EQ(s.message(), "injected crash");
  EXPECT_EQ(*fs.ReadFile(path), "old");
  EXPECT_EQ(*fs.ListDir(dir_), std::vector<std::string>{"ckpt"});
  EXPECT_EQ(fs.injected_failures(), 1);
}

TEST_F(FileSystemTest, FaultRulesHonourSkipAndCount) {
  FaultInjectingFileSystem fs(DefaultFileSystem());
  fs.FailOn("Sync", "f", absl::ResourceExhaustedError("disk full"), /*skip=*/1, /*count=*/1);
  EXPECT_TRUE(WriteFileAtomically(&fs, dir_ + "/f1", "a").ok());  // skipped
  EXPECT_EQ(WriteFileAtomically(&fs, dir_ + "/f2", "b").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(WriteFileAtomically(&fs, dir_ + "/f3", "c").ok());  // count exhausted
  EXPECT_FALSE(fs.Exists(dir_ + "/f2"));
  fs.FailOn("ReadFile", "f1", absl::DataLossError("bad sector"));
  EXPECT_EQ(fs.ReadFile(dir_ + "/f1").status().code(), absl::StatusCode::kDataLoss);
  fs.ClearFaults();
  EXPECT_EQ(*fs.ReadFile(dir_ + "/f1"), "a");
}

TEST(DirNameTest, Cases) {
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("c"), ".");
  EXPECT_EQ(DirName("/c"), "/");
}

}  // namespace
}  // namespace dino
