// BlobReader: a stored checkpoint blob read in order, chunk by chunk, and verified on the way, so a
// download holds one chunk in memory however large the checkpoint is.
//
// Open checks the file's size against the recorded one (DATA_LOSS when they differ) and, when
// starting at an offset, hashes the bytes before it without returning them. Next returns the
// following bytes; the chunk that reaches the end is returned only when the whole file's sha256
// matches the recorded one, and is DATA_LOSS otherwise. A streaming caller therefore never ends a
// corrupt download with OK. The open file keeps its bytes readable if retention deletes the blob
// meanwhile.
//
// Ownership: owns the open file; borrows nothing. Thread-safety: one thread at a time.
// Failure: OUT_OF_RANGE for an offset outside [0, size], DATA_LOSS for a size or sha256 mismatch
// and a file that shrinks while being read, file-system errors as they come.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/file_system.h"
#include "common/sha256.h"

namespace dino::server {

class BlobReader {
 public:
  // `what` names the blob in error messages (e.g. "checkpoint ckpt-3").
  static absl::StatusOr<std::unique_ptr<BlobReader>> Open(FileSystem* fs, const std::string& path,
                                                          int64_t size, std::string sha256,
                                                          int64_t offset, std::string what);

  // The next at most `max_bytes` bytes (empty once done()).
  absl::StatusOr<std::string> Next(size_t max_bytes);
  int64_t position() const { return position_; }
  int64_t size() const { return size_; }
  bool done() const { return position_ >= size_; }

 private:
  BlobReader(std::unique_ptr<ReadableFile> file, std::string path, int64_t size, std::string sha256,
             std::string what);
  // Reads and hashes [position_, position_ + n); verifies the digest when that reaches the end.
  absl::StatusOr<std::string> ReadAndHash(size_t n);

  std::unique_ptr<ReadableFile> file_;
  const std::string path_;
  const int64_t size_;
  const std::string sha256_;
  const std::string what_;
  Sha256 hash_;
  int64_t position_ = 0;
};

}  // namespace dino::server
