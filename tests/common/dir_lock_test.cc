// DirLock: one holder per directory. flock belongs to the open file, so a second Acquire in this
// same process conflicts just as another process's would; releasing (destruction) frees it, and
// a holder that dies (here: a forked child that exits without cleaning up) never leaves a stale
// lock.
#include "common/dir_lock.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace dino {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/dir_lock_XXXXXX");
  return mkdtemp(pattern.data()) != nullptr ? pattern : std::string("/tmp");
}

TEST(DirLockTest, SecondHolderIsRefusedWithTheFirstOnesPidUntilItReleases) {
  const std::string dir = TempDir();
  auto first = DirLock::Acquire(dir, "x.lock", "first");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = DirLock::Acquire(dir, "x.lock", "second");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr(dir + " is in use by another process (pid " +
                                                   std::to_string(getpid()) + " (first)"));
  EXPECT_THAT(second.status().message(), HasSubstr("two coordinators on one data dir"));
  // Another name in the same directory is another lock.
  EXPECT_TRUE(DirLock::Acquire(dir, "y.lock", "other").ok());
  first->reset();
  auto third = DirLock::Acquire(dir, "x.lock", "third");
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST(DirLockTest, AHolderThatDiesLeavesNoStaleLock) {
  const std::string dir = TempDir();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = DirLock::Acquire(dir, "x.lock", "child");
    const char byte = held.ok() ? '1' : '0';
    if (write(ready[1], &byte, 1) != 1) _exit(2);
    pause();  // killed below, lock still held
    _exit(0);
  }
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, '1');
  auto while_alive = DirLock::Acquire(dir, "x.lock", "parent");
  EXPECT_FALSE(while_alive.ok());
  EXPECT_THAT(while_alive.status().message(), HasSubstr(absl::StrCat("pid ", child, " (child)")));
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  auto after = DirLock::Acquire(dir, "x.lock", "parent");
  EXPECT_TRUE(after.ok()) << after.status();
  close(ready[0]);
  close(ready[1]);
}

TEST(DirLockTest, MissingDirectoryIsAnError) {
  auto lock = DirLock::Acquire("/nonexistent-dino-dir/sub", "x.lock", "t");
  EXPECT_FALSE(lock.ok());
  EXPECT_THAT(lock.status().message(), HasSubstr("/nonexistent-dino-dir/sub/x.lock"));
}

}  // namespace
}  // namespace dino
