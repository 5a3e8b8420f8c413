// SqliteStore: the Store on SQLite. Records are stored as serialized protos next to the columns
// that queries need, so adding a proto field needs no migration.
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "proto/dino/time_util.h"
#include "server/sqlite_db.h"
#include "server/store.h"

namespace dino::server {
namespace {

using dino::v1::CheckpointInfo;
using dino::v1::Job;
using dino::v1::JobEvent;
using dino::v1::StepStats;
using dino::v1::WorkerInfo;

// Migration N (1-based) brings the schema from version N-1 to N. Never edit one that shipped;
// append a new one.
const char* const kMigrations[] = {
    // 1: the first schema.
    R"sql(
CREATE TABLE sequences(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE jobs(id TEXT PRIMARY KEY, request_id TEXT NOT NULL, state INTEGER NOT NULL,
                  priority INTEGER NOT NULL, submit_time_us INTEGER NOT NULL, record BLOB NOT NULL);
CREATE UNIQUE INDEX jobs_request_id ON jobs(request_id) WHERE request_id <> '';
CREATE TABLE attempts(job_id TEXT NOT NULL, number INTEGER NOT NULL, state INTEGER NOT NULL,
                      record BLOB NOT NULL, PRIMARY KEY(job_id, number));
CREATE TABLE events(job_id TEXT NOT NULL, idx INTEGER NOT NULL, record BLOB NOT NULL,
                    PRIMARY KEY(job_id, idx));
CREATE TABLE stats(job_id TEXT NOT NULL, step INTEGER NOT NULL, record BLOB NOT NULL,
                   PRIMARY KEY(job_id, step));
CREATE TABLE checkpoints(id TEXT PRIMARY KEY, job_id TEXT NOT NULL, step INTEGER NOT NULL,
                         blob_path TEXT NOT NULL, deleting INTEGER NOT NULL DEFAULT 0,
                         record BLOB NOT NULL);
CREATE INDEX checkpoints_job ON checkpoints(job_id, step);
CREATE TABLE workers(id TEXT PRIMARY KEY, record BLOB NOT NULL);
)sql",
    // 2: a checkpoint's blob_path is relative to the checkpoint directory ("<job>/<id>.ckpt"), so
    // that the data dir can be reached by another spelling (a trailing slash, ./data, a new mount
    // point) and its blobs are still found. Version 1 stored "<checkpoint dir>/<job>/<id>.ckpt",
    // the registry's only naming, so the relative name follows from the row's own columns.
    R"sql(
UPDATE checkpoints SET blob_path = job_id || '/' || id || '.ckpt';
)sql",
};

template <typename Proto>
absl::StatusOr<Proto> ParseRecord(const std::string& bytes, absl::string_view table,
                                  absl::string_view key) {
  Proto proto;
  if (!proto.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("store: unparsable record in ", table, " for ", key));
  }
  return proto;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  absl::Status Init() {
    absl::MutexLock lock(&mu_);
    DINO_RETURN_IF_ERROR(db_->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
    DINO_ASSIGN_OR_RETURN(int64_t version, VersionLocked());
    const int64_t target = static_cast<int64_t>(sizeof(kMigrations) / sizeof(kMigrations[0]));
    if (version > target) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store: schema version ", version, " is newer than this coordinator (", target, ")"));
    }
    for (int64_t v = version; v < target; ++v) {
      DINO_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
      absl::Status status = db_->Exec(kMigrations[v]);
      if (status.ok()) status = db_->Exec(absl::StrCat("PRAGMA user_version=", v + 1));
      if (!status.ok()) {
        db_->Exec("ROLLBACK").IgnoreError();
        return Annotate(status, absl::StrCat("store: migration ", v + 1));
      }
      DINO_RETURN_IF_ERROR(db_->Exec("COMMIT"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> NextSequence(absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    return InTransaction<int64_t>([&]() -> absl::StatusOr<int64_t> {
      DINO_ASSIGN_OR_RETURN(auto upsert,
                            db_->Prepare("INSERT INTO sequences(name, value) VALUES(?, 1) "
                                         "ON CONFLICT(name) DO UPDATE SET value = value + 1"));
      DINO_RETURN_IF_ERROR(upsert->Bind(1, name).Run());
      DINO_ASSIGN_OR_RETURN(auto read, db_->Prepare("SELECT value FROM sequences WHERE name = ?"));
      read->Bind(1, name);
      DINO_ASSIGN_OR_RETURN(bool row, read->Step());
      if (!row) return absl::InternalError("store: sequence vanished");
      return read->ColumnInt(0);
    });
  }

  absl::Status SaveJob(const Job& job, absl::Span<const JobEvent> events,
                       const JobWrites& also) override {
    absl::MutexLock lock(&mu_);
    return InTransaction<bool>([&]() -> absl::StatusOr<bool> {
             DINO_ASSIGN_OR_RETURN(
                 auto put,
                 db_->Prepare(
                     "INSERT OR REPLACE INTO jobs(id, request_id, state, priority, submit_time_us, "
                     "record) VALUES(?, ?, ?, ?, ?, ?)"));
             put->Bind(1, job.id())
                 .Bind(2, job.spec().request_id())
                 .Bind(3, static_cast<int64_t>(job.state()))
                 .Bind(4, static_cast<int64_t>(job.spec().priority()))
                 .Bind(5, absl::ToUnixMicros(FromTimestampProto(job.submit_time())))
                 .BindBlob(6, job.SerializeAsString());
             DINO_RETURN_IF_ERROR(put->Run());
             for (const auto& attempt : job.attempts()) {
               DINO_ASSIGN_OR_RETURN(
                   auto put_attempt,
                   db_->Prepare("INSERT OR REPLACE INTO attempts(job_id, number, state, record) "
                                "VALUES(?, ?, ?, ?)"));
               put_attempt->Bind(1, job.id())
                   .Bind(2, static_cast<int64_t>(attempt.number()))
                   .Bind(3, static_cast<int64_t>(attempt.state()))
                   .BindBlob(4, attempt.SerializeAsString());
               DINO_RETURN_IF_ERROR(put_attempt->Run());
             }
             for (const auto& event : events) {
               DINO_ASSIGN_OR_RETURN(
                   auto put_event,
                   db_->Prepare("INSERT INTO events(job_id, idx, record) VALUES(?, ?, ?)"));
               put_event->Bind(1, event.job_id())
                   .Bind(2, event.index())
                   .BindBlob(3, event.SerializeAsString());
               DINO_RETURN_IF_ERROR(put_event->Run());
             }
             for (const WorkerInfo& worker : also.workers) {
               DINO_RETURN_IF_ERROR(PutWorkerLocked(worker));
             }
             if (also.checkpoint.has_value()) {
               DINO_RETURN_IF_ERROR(PutCheckpointLocked(*also.checkpoint));
             }
             return true;
           })
        .status();
  }

  absl::StatusOr<std::vector<Job>> LoadJobs() override {
    absl::MutexLock lock(&mu_);
    DINO_ASSIGN_OR_RETURN(auto query, db_->Prepare("SELECT id, record FROM jobs ORDER BY rowid"));
    std::vector<Job> jobs;
    while (true) {
      DINO_ASSIGN_OR_RETURN(bool row, query->Step());
      if (!row) break;
      DINO_ASSIGN_OR_RETURN(Job job,
                            ParseRecord<Job>(query->ColumnText(1), "jobs", query->ColumnText(0)));
      // Jobs stored before Job.submitter existed were submitted without authentication.
      if (job.submitter().empty()) job.set_submitter("anonymous");
      jobs.push_back(std::move(job));
    }
    return jobs;
  }

  absl::StatusOr<std::vector<JobEvent>> ListEvents(const std::string& job_id, int64_t after_index,
                                                   int64_t limit) override {
    absl::MutexLock lock(&mu_);
    DINO_ASSIGN_OR_RETURN(
        auto query,
        db_->Prepare(
            "SELECT idx, record FROM events WHERE job_id = ? AND idx > ? ORDER BY idx LIMIT ?"));
    query->Bind(1, job_id).Bind(2, after_index).Bind(3, limit > 0 ? limit : int64_t{-1});
    std::vector<JobEvent> events;
    while (true) {
      DINO_ASSIGN_OR_RETURN(bool row, query->Step());
      if (!row) break;
      DINO_ASSIGN_OR_RETURN(JobEvent event,
                            ParseRecord<JobEvent>(query->ColumnText(1), "events", job_id));
      events.push_back(std::move(event));
    }
    return events;
  }

  absl::Status AppendStats(const std::string& job_id, absl::Span<const StepStats> stats) override {
    absl::MutexLock lock(&mu_);
    return InTransaction<bool>([&]() -> absl::StatusOr<bool> {
             for (const auto& s : stats) {
               DINO_ASSIGN_OR_RETURN(
                   auto put,
                   db_->Prepare(
                       "INSERT OR IGNORE INTO stats(job_id, step, record) VALUES(?, ?, ?)"));
               put->Bind(1, job_id).Bind(2, s.step()).BindBlob(3, s.SerializeAsString());
               DINO_RETURN_IF_ERROR(put->Run());
             }
             return true;
           })
        .status();
  }

  absl::StatusOr<std::vector<StepStats>> ListStats(const std::string& job_id, int64_t from_step,
                                                   int64_t to_step) override {
    absl::MutexLock lock(&mu_);
    DINO_ASSIGN_OR_RETURN(
        auto query,
        db_->Prepare(
            "SELECT record FROM stats WHERE job_id = ? AND step >= ? AND (? < 0 OR step <= ?) "
            "ORDER BY step"));
    query->Bind(1, job_id).Bind(2, from_step).Bind(3, to_step).Bind(4, to_step);
    std::vector<StepStats> stats;
    while (true) {
      DINO_ASSIGN_OR_RETURN(bool row, query->Step());
      if (!row) break;
      DINO_ASSIGN_OR_RETURN(StepStats s,
                            ParseRecord<StepStats>(query->ColumnText(0), "stats", job_id));
      stats.push_back(std::move(s));
    }
    return stats;
  }

  absl::Status InsertCheckpoint(const StoredCheckpoint& checkpoint) override {
    absl::MutexLock lock(&mu_);
    return PutCheckpointLocked(checkpoint);
  }

  absl::Status PutCheckpointLocked(const StoredCheckpoint& checkpoint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DINO_ASSIGN_OR_RETURN(
        auto put,
        db_->Prepare("INSERT INTO checkpoints(id, job_id, step, blob_path, deleting, record) "
                     "VALUES(?, ?, ?, ?, ?, ?)"));
    put->Bind(1, checkpoint.info.id())
        .Bind(2, checkpoint.info.job_id())
        .Bind(3, checkpoint.info.step())
        .Bind(4, checkpoint.blob_path)
        .Bind(5, int64_t{checkpoint.deleting ? 1 : 0})
        .BindBlob(6, checkpoint.info.SerializeAsString());
    return put->Run();
  }

  absl::StatusOr<std::vector<StoredCheckpoint>> ListCheckpoints(const std::string& job_id,
                                                                bool include_deleting) override {
    absl::MutexLock lock(&mu_);
    DINO_ASSIGN_OR_RETURN(
        auto query,
        db_->Prepare(
            "SELECT id, blob_path, deleting, record FROM checkpoints "
            "WHERE (? = '' OR job_id = ?) AND (? OR deleting = 0) ORDER BY job_id, step, id"));
    query->Bind(1, job_id).Bind(2, job_id).Bind(3, int64_t{include_deleting ? 1 : 0});
    std::vector<StoredCheckpoint> out;
    while (true) {
      DINO_ASSIGN_OR_RETURN(bool row, query->Step());
      if (!row) break;
      StoredCheckpoint checkpoint;
      DINO_ASSIGN_OR_RETURN(
          checkpoint.info,
          ParseRecord<CheckpointInfo>(query->ColumnText(3), "checkpoints", query->ColumnText(0)));
      checkpoint.blob_path = query->ColumnText(1);
      checkpoint.deleting = query->ColumnInt(2) != 0;
      out.push_back(std::move(checkpoint));
    }
    return out;
  }

  absl::Status MarkCheckpointDeleting(const std::string& checkpoint_id) override {
    absl::MutexLock lock(&mu_);
    DINO_ASSIGN_OR_RETURN(auto update,
                          db_->Prepare("UPDATE checkpoints SET deleting = 1 WHERE id = ?"));
    return update->Bind(1, checkpoint_id).Run();
  }

  absl::Status DeleteCheckpoint(const std::string& checkpoint_id) override {
    absl::MutexLock lock(&mu_);
    DINO_ASSIGN_OR_RETURN(auto remove, db_->Prepare("DELETE FROM checkpoints WHERE id = ?"));
    return remove->Bind(1, checkpoint_id).Run();
  }

  absl::Status SaveWorker(const WorkerInfo& worker) override {
    absl::MutexLock lock(&mu_);
    return PutWorkerLocked(worker);
  }

  absl::Status PutWorkerLocked(const WorkerInfo& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DINO_ASSIGN_OR_RETURN(auto put,
                          db_->Prepare("INSERT OR REPLACE INTO workers(id, record) VALUES(?, ?)"));
    return put->Bind(1, worker.id()).BindBlob(2, worker.SerializeAsString()).Run();
  }

  absl::StatusOr<std::vector<WorkerInfo>> LoadWorkers() override {
    absl::MutexLock lock(&mu_);
    DINO_ASSIGN_OR_RETURN(auto query,
                          db_->Prepare("SELECT id, record FROM workers ORDER BY rowid"));
    std::vector<WorkerInfo> workers;
    while (true) {
      DINO_ASSIGN_OR_RETURN(bool row, query->Step());
      if (!row) break;
      DINO_ASSIGN_OR_RETURN(
          WorkerInfo worker,
          ParseRecord<WorkerInfo>(query->ColumnText(1), "workers", query->ColumnText(0)));
      workers.push_back(std::move(worker));
    }
    return workers;
  }

  absl::StatusOr<int64_t> SchemaVersion() override {
    absl::MutexLock lock(&mu_);
    return VersionLocked();
  }

 private:
  absl::StatusOr<int64_t> VersionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DINO_ASSIGN_OR_RETURN(auto query, db_->Prepare("PRAGMA user_version"));
    DINO_ASSIGN_OR_RETURN(bool row, query->Step());
    return row ? query->ColumnInt(0) : 0;
  }

  // Runs `body` between BEGIN IMMEDIATE and COMMIT; rolls back when it fails.
  template <typename T, typename Body>
  absl::StatusOr<T> InTransaction(Body body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DINO_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
    absl::StatusOr<T> result = body();
    if (!result.ok()) {
      db_->Exec("ROLLBACK").IgnoreError();
      return result;
    }
    absl::Status commit = db_->Exec("COMMIT");
    if (!commit.ok()) {
      db_->Exec("ROLLBACK").IgnoreError();
      return commit;
    }
    return result;
  }

  absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  auto store = std::make_unique<SqliteStore>(std::move(db));
  DINO_RETURN_IF_ERROR(Annotate(store->Init(), path));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace dino::server
