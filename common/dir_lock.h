// DirLock: an exclusive lock on a directory that one process holds for its whole life, so that
// two dino-coordinators are never started on one data dir (each would schedule the same jobs, and
// each one's startup sweep would delete the other's checkpoint files).
//
// Acquire creates "<dir>/<name>" if needed and takes flock(LOCK_EX | LOCK_NB) on it, then writes
// the holder's pid into it for the message the next one gets. The lock belongs to the open file:
// it is released when the DirLock is destroyed or the process ends in any way (kill -9 included),
// so a crashed coordinator never leaves a stale lock behind. A second Acquire on the same path,
// from this process or another, fails while the first is held.
//
// Ownership: the caller owns the DirLock. Thread-safety: immutable after Acquire.
// Failure: FAILED_PRECONDITION naming the directory and the holder's pid when another holds it;
// the errno of open/flock (as a Status) otherwise.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace dino {

class DirLock {
 public:
  static absl::StatusOr<std::unique_ptr<DirLock>> Acquire(const std::string& dir,
                                                          const std::string& name,
                                                          const std::string& holder);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  DirLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

}  // namespace dino
