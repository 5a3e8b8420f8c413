#include "common/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace dino {
namespace {

absl::Status Errno(const std::string& what, int err) {
  return absl::Status(err == ENOENT ? absl::StatusCode::kNotFound
                                    : absl::StatusCode::kFailedPrecondition,
                      absl::StrCat(what, ": ", std::strerror(err)));
}

// What the holder wrote into the lock file ("pid 1234 (dino-coordinator)"), or "" if unreadable.
std::string ReadHolder(int fd) {
  char buf[256];
  const ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "";
  return std::string(absl::StripAsciiWhitespace(absl::string_view(buf, static_cast<size_t>(n))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<DirLock>> DirLock::Acquire(const std::string& dir,
                                                          const std::string& name,
                                                          const std::string& holder) {
  std::string path = absl::StrCat(dir, "/", name);
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("open ", path), errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string current = ReadHolder(fd);
    close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, " is in use by another process (", current.empty() ? "holder unknown" : current,
          ", lock ", path, "): two coordinators on one data dir would schedule the same jobs and "
          "delete each other's checkpoints"));
    }
    return Errno(absl::StrCat("flock ", path), err);
  }
  const std::string text = absl::StrCat("pid ", getpid(), " (", holder, ")\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, text.data(), text.size(), 0) < 0) {
    const int err = errno;
    close(fd);
    return Errno(absl::StrCat("write ", path), err);
  }
  return std::unique_ptr<DirLock>(new DirLock(std::move(path), fd));
}

DirLock::~DirLock() { close(fd_); }

}  // namespace dino
