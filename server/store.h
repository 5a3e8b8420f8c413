// Store: the coordinator's durable state (jobs with their attempts, events, training statistics,
// checkpoint metadata, workers and id sequences), behind an interface so the coordinator does not
// know it is SQLite.
//
// SqliteStore is the implementation: one SQLite file in WAL mode (synchronous=FULL), every write a
// transaction, schema migrations numbered from the first version (PRAGMA user_version). A
// coordinator killed at any point reopens the file with every committed write intact. Tests use
// OpenSqliteStore(":memory:") or a file under a temporary directory.
//
// Ownership: the caller owns the Store. Thread-safety: every method is safe from any thread (one
// connection, serialised by a mutex). Failure: SQLite errors come back as INTERNAL or UNAVAILABLE
// with SQLite's message; a record that does not parse is DATA_LOSS naming the table and key.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dino/v1/job.pb.h"

namespace dino::server {

// A checkpoint row: its metadata and where its blob lives.
struct StoredCheckpoint {
  dino::v1::CheckpointInfo info;
  // Relative to the checkpoint directory ("<job>/<id>.ckpt"): the data dir may be named another
  // way at the next start.
  std::string blob_path;
  bool deleting = false;  // Retention started deleting it; never listed or served.
};

// What else one job transition writes, in the same transaction as the job: the workers whose
// records change with it (the gang of an attempt that starts or ends), and a checkpoint row that
// becomes the job's latest. A crash therefore never leaves a job RUNNING on workers stored idle,
// nor a committed checkpoint without its event.
struct JobWrites {
  std::vector<dino::v1::WorkerInfo> workers;  // Saved as with SaveWorker.
  std::optional<StoredCheckpoint> checkpoint;  // Inserted as with InsertCheckpoint.
};

class Store {
 public:
  virtual ~Store() = default;

  // Returns the next value (1, 2, ...) of the named sequence; never repeats, even across restarts.
  virtual absl::StatusOr<int64_t> NextSequence(absl::string_view name) = 0;

  // Writes `job` (and each of its attempts), appends `events` and applies `also`, all in one
  // transaction: on an error nothing of it is stored.
  virtual absl::Status SaveJob(const dino::v1::Job& job,
                               absl::Span<const dino::v1::JobEvent> events,
                               const JobWrites& also = JobWrites()) = 0;
  virtual absl::StatusOr<std::vector<dino::v1::Job>> LoadJobs() = 0;
  // Events of a job with index > after_index, ascending, at most `limit` (0 = all).
  virtual absl::StatusOr<std::vector<dino::v1::JobEvent>> ListEvents(const std::string& job_id,
                                                                     int64_t after_index,
                                                                     int64_t limit) = 0;

  // Appends training statistics; a step already stored for the job is ignored (re-sent reports).
  virtual absl::Status AppendStats(const std::string& job_id,
                                   absl::Span<const dino::v1::StepStats> stats) = 0;
  // Steps in [from_step, to_step] ascending; to_step < 0 means no upper bound.
  virtual absl::StatusOr<std::vector<dino::v1::StepStats>> ListStats(const std::string& job_id,
                                                                     int64_t from_step,
                                                                     int64_t to_step) = 0;

  virtual absl::Status InsertCheckpoint(const StoredCheckpoint& checkpoint) = 0;
  // Checkpoints of one job (or of every job when job_id is empty), ascending step.
  virtual absl::StatusOr<std::vector<StoredCheckpoint>> ListCheckpoints(const std::string& job_id,
                                                                        bool include_deleting) = 0;
  virtual absl::Status MarkCheckpointDeleting(const std::string& checkpoint_id) = 0;
  virtual absl::Status DeleteCheckpoint(const std::string& checkpoint_id) = 0;

  virtual absl::Status SaveWorker(const dino::v1::WorkerInfo& worker) = 0;
  virtual absl::StatusOr<std::vector<dino::v1::WorkerInfo>> LoadWorkers() = 0;

  // The schema version after migrations (for tests and logs).
  virtual absl::StatusOr<int64_t> SchemaVersion() = 0;
};

// Opens (creating and migrating) the SQLite store at `path`, or ":memory:".
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace dino::server
