#include "server/blob_reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dino::server {

// Chunk in which the bytes before a resume offset are hashed.
constexpr size_t kSkipChunkBytes = 1 << 20;

BlobReader::BlobReader(std::unique_ptr<ReadableFile> file, std::string path, int64_t size,
                       std::string sha256, std::string what)
    : file_(std::move(file)),
      path_(std::move(path)),
      size_(size),
      sha256_(std::move(sha256)),
      what_(std::move(what)) {}

absl::StatusOr<std::unique_ptr<BlobReader>> BlobReader::Open(FileSystem* fs,
                                                             const std::string& path, int64_t size,
                                                             std::string sha256, int64_t offset,
                                                             std::string what) {
  if (offset < 0 || offset > size) {
    return absl::OutOfRangeError(absl::StrCat("offset must be in [0, ", size, "], got ", offset));
  }
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<ReadableFile> file, fs->NewReadableFile(path));
  if (file->size() != static_cast<uint64_t>(size)) {
    return absl::DataLossError(absl::StrCat(what, " at ", path, " has ", file->size(),
                                            " bytes; its recorded size is ", size));
  }
  std::unique_ptr<BlobReader> reader(
      new BlobReader(std::move(file), path, size, std::move(sha256), std::move(what)));
  if (size == 0) {
    DINO_RETURN_IF_ERROR(reader->ReadAndHash(0).status());
  }
  while (reader->position_ < offset) {
    const auto n = static_cast<size_t>(
        std::min<int64_t>(static_cast<int64_t>(kSkipChunkBytes), offset - reader->position_));
    DINO_RETURN_IF_ERROR(reader->ReadAndHash(n).status());
  }
  return reader;
}

absl::StatusOr<std::string> BlobReader::Next(size_t max_bytes) {
  if (done()) return std::string();
  const auto n =
      static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(max_bytes), size_ - position_));
  return ReadAndHash(n);
}

absl::StatusOr<std::string> BlobReader::ReadAndHash(size_t n) {
  DINO_ASSIGN_OR_RETURN(std::string bytes, file_->Read(static_cast<uint64_t>(position_), n));
  if (bytes.size() != n) {
    return absl::DataLossError(absl::StrCat(what_, " at ", path_, " ended at byte ",
                                            position_ + static_cast<int64_t>(bytes.size()),
                                            " while being read; its recorded size is ", size_));
  }
  hash_.Update(bytes);
  position_ += static_cast<int64_t>(n);
  if (position_ == size_ && hash_.HexDigest() != sha256_) {
    return absl::DataLossError(
        absl::StrCat(what_, " at ", path_, " does not match its recorded sha256"));
  }
  return bytes;
}

}  // namespace dino::server
