// CheckpointRegistry: the checkpoint blobs on the coordinator's disk and their rows in the Store.
//
// Commit protocol (crash-safe at every step): the upload streams into "<dir>/<job>/<id>.tmp",
// hashing as it goes (a job's directory is fsynced into <dir> when it is created); Prepare checks
// the byte count and the sha256, fsyncs, renames to "<dir>/<job>/<id>.ckpt" and fsyncs the
// directory; only then is the row inserted: by Commit, or by the caller in a transaction of its
// own (the coordinator inserts it with the job's update, after checking that the uploading attempt
// is still current) or, when the caller refuses it, Discard removes the blob. A truncated or
// corrupt upload is rejected with DATA_LOSS and leaves nothing behind, so it never becomes the
// latest. Deletion marks the row `deleting` (no longer listed), removes the blob, then the row;
// Recover() finishes deletions interrupted by a crash and removes temporary files and blobs that
// never got their row.
//
// Rows name their blobs relative to the registry's dir, so a data dir spelled differently at the
// next start (a trailing slash, ./data against data, a volume mounted elsewhere) finds the same
// blobs. Recover never deletes a ".ckpt" file whose name is the id of a row (whatever folder it is
// in), and it refuses (FAILED_PRECONDITION, nothing deleted) when the blobs no row names outnumber
// the ones rows name and are more than one: that is a wrong --data-dir or a store from elsewhere,
// not a crash, which leaves at most one such blob per upload in flight.
//
// Retention keeps the `keep_last` most recent checkpoints plus the `keep_best` best by k-NN
// top-1 (those that have one).
//
// File names come from the registry alone: ids are assigned here ("ckpt-N"), and a job_id that is
// not a plain name ([A-Za-z0-9._-], not "." or "..") is INVALID_ARGUMENT at BeginUpload.
//
// Ownership: borrows the Store and the FileSystem, which must outlive it. A CheckpointUpload is
// owned by the caller streaming it.
// Thread-safety: the registry is safe from any thread (distinct uploads use distinct files); one
// CheckpointUpload is used by one thread at a time.
// Failure: DATA_LOSS for size or sha256 mismatches and unreadable blobs, NOT_FOUND for unknown
// checkpoints, file-system and store errors as they come.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_system.h"
#include "common/sha256.h"
#include "dino/v1/job.pb.h"
#include "server/blob_reader.h"
#include "server/store.h"

namespace dino::server {

class CheckpointUpload {
 public:
  // Appends the next bytes. Fails with DATA_LOSS once more than the announced size arrives.
  absl::Status Append(absl::string_view data);
  const dino::v1::CheckpointInfo& info() const { return info_; }
  const std::string& uploader() const { return uploader_; }
  void set_uploader(std::string worker_id) { uploader_ = std::move(worker_id); }
  int64_t received() const { return received_; }

 private:
  friend class CheckpointRegistry;
  dino::v1::CheckpointInfo info_;  // sha256 unset until Commit.
  std::string temp_path;
  std::string final_path;
  std::string relative_path;  // final_path relative to the registry's dir (the row's blob_path)
  std::string uploader_;  // The worker that sends it (CheckpointUploadHeader.worker_id).
  std::unique_ptr<WritableFile> file_;
  dino::Sha256 hash_;
  int64_t received_ = 0;
};

// A verified upload whose blob is durable under its final name, waiting for its row.
struct PreparedCheckpoint {
  StoredCheckpoint row;  // info.sha256 set.
  // The job already had this checkpoint (same step and sha256: a re-sent upload); `row` is the
  // stored one and nothing was written.
  bool duplicate = false;
};

class CheckpointRegistry {
 public:
  CheckpointRegistry(Store* store, FileSystem* fs, std::string dir);

  absl::Status Recover();
  // Where a row's blob is on disk.
  std::string BlobPath(const StoredCheckpoint& checkpoint) const;

  // Starts an upload. `info` carries job_id, attempt, step, epoch, statistics and size_bytes
  // (the exact size that will be sent); the registry assigns the id.
  absl::StatusOr<std::unique_ptr<CheckpointUpload>> BeginUpload(dino::v1::CheckpointInfo info);
  // Verifies the upload and makes its blob durable (see above); the row is not inserted yet. If
  // the job already has a committed checkpoint at the same step with the same sha256 (a re-sent
  // upload), returns that one as a duplicate and keeps nothing new.
  absl::StatusOr<PreparedCheckpoint> Prepare(std::unique_ptr<CheckpointUpload> upload,
                                             absl::string_view sha256_hex);
  // Removes the blob of a prepared checkpoint whose row will not be inserted (nothing for a
  // duplicate).
  void Discard(const PreparedCheckpoint& prepared);
  // Prepare, then insert the row on its own (Discard when that fails).
  absl::StatusOr<dino::v1::CheckpointInfo> Commit(std::unique_ptr<CheckpointUpload> upload,
                                                  absl::string_view sha256_hex);
  // Drops an unfinished upload (a broken stream) and its temporary file.
  void Abandon(std::unique_ptr<CheckpointUpload> upload);

  // Committed checkpoints of a job, ascending step.
  absl::StatusOr<std::vector<dino::v1::CheckpointInfo>> List(const std::string& job_id);
  // `which` is a checkpoint id, "latest" (or "") or "best" (highest k-NN top-1; latest if none
  // was evaluated). NOT_FOUND when the job has none.
  absl::StatusOr<StoredCheckpoint> Resolve(const std::string& job_id, const std::string& which);
  // The blob from byte `offset` on, verified against its recorded size and sha256 as it is read
  // (see BlobReader).
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenBlob(const StoredCheckpoint& checkpoint,
                                                       int64_t offset);

  // Deletes what the retention policy does not keep. Returns the ids deleted.
  absl::StatusOr<std::vector<std::string>> ApplyRetention(const std::string& job_id,
                                                          int64_t keep_last, int64_t keep_best);
  // Deletes one checkpoint: mark, blob, row.
  absl::Status Delete(const StoredCheckpoint& checkpoint);

 private:
  Store* const store_;
  FileSystem* const fs_;
  const std::string dir_;
};

}  // namespace dino::server
