// FileSystem: the I/O seam for checkpoints, exports and the coordinator's blob store.
//
// Modelled on leveldb's Env: code that persists data takes a `FileSystem*` (owned by main or the
// test), so disk faults and crashes between two steps of a write are injected deterministically
// with FaultInjectingFileSystem.
//
// Thread-safety: PosixFileSystem is stateless and thread-safe; FaultInjectingFileSystem guards its
// rules with a mutex. A WritableFile is used by one thread at a time.
// Failure: every operation returns a Status naming the path and the OS error (errno text).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace dino {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual absl::Status Append(absl::string_view data) = 0;
  virtual absl::Status Sync() = 0;  // fsync: data is durable when this returns OK.
  virtual absl::Status Close() = 0;
};

// A file open for reading at any offset. On POSIX its bytes stay readable after the path is
// deleted or replaced (by retention or a rename), until the object is destroyed.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Up to `n` bytes starting at `offset`; fewer only at the end of the file (none past it).
  virtual absl::StatusOr<std::string> Read(uint64_t offset, size_t n) = 0;
  virtual uint64_t size() const = 0;  // At open time.
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates or truncates `path`.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  virtual absl::StatusOr<std::unique_ptr<ReadableFile>> NewReadableFile(
      const std::string& path) = 0;
  virtual absl::Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual absl::Status DeleteFile(const std::string& path) = 0;  // NOT_FOUND if absent.
  virtual absl::Status CreateDirs(const std::string& path) = 0;  // mkdir -p
  virtual absl::Status SyncDir(const std::string& dir) = 0;      // makes a rename durable.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual absl::StatusOr<uint64_t> FileSize(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
};

// The process-wide POSIX implementation.
FileSystem* DefaultFileSystem();

// Writes `data` to `path` so that a reader sees either the old file or the complete new one:
// temporary file in the same directory, fsync, rename, fsync of the directory.
absl::Status WriteFileAtomically(FileSystem* fs, const std::string& path, absl::string_view data);

// Directory part of `path` ("." when it has none).
std::string DirName(const std::string& path);

// Wraps another FileSystem and fails operations on demand, to test crash and disk-fault handling.
// A rule matches an operation name ("NewWritableFile", "Append", "Sync", "Close", "RenameFile",
// "DeleteFile", "CreateDirs", "SyncDir", "ReadFile", "NewReadableFile", "Read") and a path
// substring; the first `skip` matches pass and the next ones fail with `error` (`count` times, or
// forever when count < 0).
class FaultInjectingFileSystem final : public FileSystem {
 public:
  explicit FaultInjectingFileSystem(FileSystem* base) : base_(base) {}

  void FailOn(std::string op, std::string path_substring, absl::Status error, int skip = 0,
              int count = -1);
  void ClearFaults();
  // Number of operations that were failed by a rule so far.
  int injected_failures() const;

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) override;
  absl::Status RenameFile(const std::string& from, const std::string& to) override;
  absl::Status DeleteFile(const std::string& path) override;
  absl::Status CreateDirs(const std::string& path) override;
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override;
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override;
  bool Exists(const std::string& path) override;

  // Checked by the wrapped WritableFile for Append/Sync/Close and ReadableFile for Read.
  absl::Status Check(absl::string_view op, absl::string_view path);

 private:
  struct Rule {
    std::string op;
    std::string path_substring;
    absl::Status error;
    int skip;
    int count;
  };
  FileSystem* const base_;
  mutable absl::Mutex mu_;
  std::vector<Rule> rules_ ABSL_GUARDED_BY(mu_);
  int injected_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dino
