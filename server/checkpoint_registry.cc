#include "server/checkpoint_registry.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dino::server {

using dino::v1::CheckpointInfo;

namespace {

// Job ids name a directory under the registry's dir: only plain names ("job-12") may do that.
bool IsPlainName(absl::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

absl::Status CheckpointUpload::Append(absl::string_view data) {
  if (received_ + static_cast<int64_t>(data.size()) > info_.size_bytes()) {
    return absl::DataLossError(absl::StrCat("checkpoint upload for ", info_.job_id(), " step ",
                                            info_.step(), ": more than the announced ",
                                            info_.size_bytes(), " bytes"));
  }
  DINO_RETURN_IF_ERROR(file_->Append(data));
  hash_.Update(data);
  received_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

CheckpointRegistry::CheckpointRegistry(Store* store, FileSystem* fs, std::string dir)
    : store_(store), fs_(fs), dir_(std::move(dir)) {}

std::string CheckpointRegistry::BlobPath(const StoredCheckpoint& checkpoint) const {
  return absl::StrCat(dir_, "/", checkpoint.blob_path);
}

absl::Status CheckpointRegistry::Recover() {
  DINO_RETURN_IF_ERROR(fs_->CreateDirs(dir_));
  DINO_ASSIGN_OR_RETURN(std::vector<StoredCheckpoint> all, store_->ListCheckpoints("", true));
  std::set<std::string> referenced;  // relative blob paths of live rows
  std::set<std::string> row_files;   // "<id>.ckpt" of every row, wherever its blob is
  for (const StoredCheckpoint& checkpoint : all) {
    row_files.insert(absl::StrCat(checkpoint.info.id(), ".ckpt"));
    if (checkpoint.deleting) {
      DINO_LOG(INFO) << "finishing the interrupted deletion of checkpoint " << checkpoint.info.id();
      DINO_RETURN_IF_ERROR(Delete(checkpoint));
    } else {
      referenced.insert(checkpoint.blob_path);
    }
  }
  // First the plan, then the deletions: nothing is removed when the plan is refused.
  std::vector<std::string> temporary, orphans;
  int64_t kept = 0;
  DINO_ASSIGN_OR_RETURN(std::vector<std::string> job_dirs, fs_->ListDir(dir_));
  for (const std::string& job_dir : job_dirs) {
    absl::StatusOr<std::vector<std::string>> files = fs_->ListDir(absl::StrCat(dir_, "/", job_dir));
    if (!files.ok()) continue;  // Not a directory.
    for (const std::string& file : *files) {
      const std::string relative = absl::StrCat(job_dir, "/", file);
      if (referenced.count(relative) > 0) {
        ++kept;
      } else if (!absl::EndsWith(file, ".ckpt")) {
        temporary.push_back(relative);
      } else if (row_files.count(file) > 0) {
        DINO_LOG(WARNING) << "keeping checkpoint file " << relative
                          << ": a row names a blob of that id elsewhere";
      } else {
        orphans.push_back(relative);
      }
    }
  }
  const int64_t orphan_count = static_cast<int64_t>(orphans.size());
  if (orphan_count > 1 && orphan_count > kept) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint recovery in ", dir_, " would remove ", orphan_count,
        " checkpoint files that no row of the store names and keep only ", kept,
        "; refusing to delete anything. Is --data-dir the directory this store belongs to? "
        "(first unnamed file: ", orphans.front(), ")"));
  }
  for (const std::vector<std::string>* list : {&temporary, &orphans}) {
    for (const std::string& relative : *list) {
      const std::string blob = absl::StrCat(dir_, "/", relative);
      DINO_LOG(INFO) << "removing unreferenced checkpoint file " << blob;
      absl::Status status = fs_->DeleteFile(blob);
      if (!status.ok() && !absl::IsNotFound(status)) return status;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CheckpointUpload>> CheckpointRegistry::BeginUpload(
    CheckpointInfo info) {
  if (!IsPlainName(info.job_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint job_id must be 1..128 bytes of [A-Za-z0-9._-] and not \".\" or \"..\", got \"",
        absl::CEscape(info.job_id()), "\""));
  }
  if (info.size_bytes() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint size_bytes must be >= 0, got ", info.size_bytes()));
  }
  DINO_ASSIGN_OR_RETURN(int64_t number, store_->NextSequence("checkpoint"));
  auto upload = std::unique_ptr<CheckpointUpload>(new CheckpointUpload());
  info.set_id(absl::StrCat("ckpt-", number));
  info.clear_sha256();
  const std::string job_dir = absl::StrCat(dir_, "/", info.job_id());
  const bool new_dir = !fs_->Exists(job_dir);
  DINO_RETURN_IF_ERROR(fs_->CreateDirs(job_dir));
  // The new directory's entry in dir_ must be durable before a blob in it is: otherwise a crash
  // can lose the whole directory after its checkpoint's row was committed.
  if (new_dir) DINO_RETURN_IF_ERROR(fs_->SyncDir(dir_));
  upload->temp_path = absl::StrCat(job_dir, "/", info.id(), ".tmp");
  upload->relative_path = absl::StrCat(info.job_id(), "/", info.id(), ".ckpt");
  upload->final_path = absl::StrCat(dir_, "/", upload->relative_path);
  DINO_ASSIGN_OR_RETURN(upload->file_, fs_->NewWritableFile(upload->temp_path));
  upload->info_ = std::move(info);
  return upload;
}

void CheckpointRegistry::Abandon(std::unique_ptr<CheckpointUpload> upload) {
  if (upload == nullptr) return;
  if (upload->file_ != nullptr) upload->file_->Close().IgnoreError();
  fs_->DeleteFile(upload->temp_path).IgnoreError();
}

absl::StatusOr<PreparedCheckpoint> CheckpointRegistry::Prepare(
    std::unique_ptr<CheckpointUpload> upload, absl::string_view sha256_hex) {
  CheckpointUpload* u = upload.get();
  auto fail = [&](absl::Status status) {
    Abandon(std::move(upload));
    return status;
  };
  if (u->received_ != u->info_.size_bytes()) {
    return fail(absl::DataLossError(
        absl::StrCat("checkpoint upload for ", u->info_.job_id(), " step ", u->info_.step(),
                     " is truncated: ", u->received_, " of ", u->info_.size_bytes(), " bytes")));
  }
  const std::string actual = u->hash_.HexDigest();
  if (actual != sha256_hex) {
    return fail(absl::DataLossError(absl::StrCat("checkpoint upload for ", u->info_.job_id(),
                                                 " step ", u->info_.step(), ": sha256 is ", actual,
                                                 " but the sender said ", sha256_hex)));
  }
  absl::StatusOr<std::vector<StoredCheckpoint>> existing =
      store_->ListCheckpoints(u->info_.job_id(), false);
  if (!existing.ok()) return fail(existing.status());
  for (const StoredCheckpoint& e : *existing) {
    if (e.info.step() == u->info_.step() && e.info.sha256() == actual) {
      Abandon(std::move(upload));
      return PreparedCheckpoint{e, /*duplicate=*/true};
    }
  }
  absl::Status status = u->file_->Sync();
  if (status.ok()) status = u->file_->Close();
  if (status.ok()) status = fs_->RenameFile(u->temp_path, u->final_path);
  if (!status.ok()) return fail(status);
  PreparedCheckpoint prepared;
  prepared.row.info = u->info_;
  prepared.row.info.set_sha256(actual);
  prepared.row.blob_path = u->relative_path;
  status = fs_->SyncDir(DirName(u->final_path));
  if (!status.ok()) {
    Discard(prepared);
    return status;
  }
  return prepared;
}

void CheckpointRegistry::Discard(const PreparedCheckpoint& prepared) {
  if (prepared.duplicate) return;
  // Recover() would remove it too: no row names it.
  fs_->DeleteFile(BlobPath(prepared.row)).IgnoreError();
}

absl::StatusOr<CheckpointInfo> CheckpointRegistry::Commit(std::unique_ptr<CheckpointUpload> upload,
                                                          absl::string_view sha256_hex) {
  DINO_ASSIGN_OR_RETURN(PreparedCheckpoint prepared, Prepare(std::move(upload), sha256_hex));
  if (prepared.duplicate) return prepared.row.info;
  absl::Status status = store_->InsertCheckpoint(prepared.row);
  if (!status.ok()) {
    Discard(prepared);
    return status;
  }
  return prepared.row.info;
}

absl::StatusOr<std::vector<CheckpointInfo>> CheckpointRegistry::List(const std::string& job_id) {
  DINO_ASSIGN_OR_RETURN(std::vector<StoredCheckpoint> rows, store_->ListCheckpoints(job_id, false));
  std::vector<CheckpointInfo> out;
  out.reserve(rows.size());
  for (auto& row : rows) out.push_back(std::move(row.info));
  return out;
}

absl::StatusOr<StoredCheckpoint> CheckpointRegistry::Resolve(const std::string& job_id,
                                                             const std::string& which) {
  DINO_ASSIGN_OR_RETURN(std::vector<StoredCheckpoint> rows, store_->ListCheckpoints(job_id, false));
  if (rows.empty()) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no checkpoints"));
  }
  if (which.empty() || which == "latest") return rows.back();
  if (which == "best") {
    const StoredCheckpoint* best = nullptr;
    for (const auto& row : rows) {
      if (row.info.has_knn_top1() &&
          (best == nullptr || row.info.knn_top1() >= best->info.knn_top1())) {
        best = &row;
      }
    }
    return best != nullptr ? *best : rows.back();
  }
  for (const auto& row : rows) {
    if (row.info.id() == which) return row;
  }
  return absl::NotFoundError(absl::StrCat("job ", job_id, " has no checkpoint ", which));
}

absl::StatusOr<std::unique_ptr<BlobReader>> CheckpointRegistry::OpenBlob(
    const StoredCheckpoint& checkpoint, int64_t offset) {
  return BlobReader::Open(fs_, BlobPath(checkpoint), checkpoint.info.size_bytes(),
                          checkpoint.info.sha256(), offset,
                          absl::StrCat("checkpoint ", checkpoint.info.id()));
}

absl::Status CheckpointRegistry::Delete(const StoredCheckpoint& checkpoint) {
  DINO_RETURN_IF_ERROR(store_->MarkCheckpointDeleting(checkpoint.info.id()));
  absl::Status status = fs_->DeleteFile(BlobPath(checkpoint));
  if (!status.ok() && !absl::IsNotFound(status)) return status;
  return store_->DeleteCheckpoint(checkpoint.info.id());
}

absl::StatusOr<std::vector<std::string>> CheckpointRegistry::ApplyRetention(
    const std::string& job_id, int64_t keep_last, int64_t keep_best) {
  DINO_ASSIGN_OR_RETURN(std::vector<StoredCheckpoint> rows, store_->ListCheckpoints(job_id, false));
  std::set<std::string> keep;
  for (int64_t i = 0; i < keep_last && i < static_cast<int64_t>(rows.size()); ++i) {
    keep.insert(rows[rows.size() - 1 - i].info.id());
  }
  std::vector<const StoredCheckpoint*> evaluated;
  for (const auto& row : rows) {
    if (row.info.has_knn_top1()) evaluated.push_back(&row);
  }
  std::stable_sort(evaluated.begin(), evaluated.end(), [](const auto* a, const auto* b) {
    return a->info.knn_top1() > b->info.knn_top1();
  });
  for (int64_t i = 0; i < keep_best && i < static_cast<int64_t>(evaluated.size()); ++i) {
    keep.insert(evaluated[i]->info.id());
  }
  std::vector<std::string> deleted;
  for (const auto& row : rows) {
    if (keep.count(row.info.id()) > 0) continue;
    DINO_RETURN_IF_ERROR(Delete(row));
    deleted.push_back(row.info.id());
  }
  return deleted;
}

}  // namespace dino::server
