#include "server/store.h"

#include <string>

#include "gtest/gtest.h"
#include "server/sqlite_db.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

TEST(StoreTest, MigratesAnEmptyDatabase) {
  auto store = OpenSqliteStore(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  auto version = (*store)->SchemaVersion();
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 2);
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE(jobs->empty());
}

// A version-1 store named checkpoint blobs by the absolute path of the data dir it was opened
// with; migration 2 keeps only "<job>/<id>.ckpt", whatever that path was.
TEST(StoreTest, MigrationMakesVersionOneBlobPathsRelative) {
  const std::string path = testing::NewTempDir("migrate") + "/db";
  {
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(R"sql(
CREATE TABLE sequences(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE jobs(id TEXT PRIMARY KEY, request_id TEXT NOT NULL, state INTEGER NOT NULL,
                  priority INTEGER NOT NULL, submit_time_us INTEGER NOT NULL, record BLOB NOT NULL);
CREATE TABLE attempts(job_id TEXT NOT NULL, number INTEGER NOT NULL, state INTEGER NOT NULL,
                      record BLOB NOT NULL, PRIMARY KEY(job_id, number));
CREATE TABLE events(job_id TEXT NOT NULL, idx INTEGER NOT NULL, record BLOB NOT NULL,
                    PRIMARY KEY(job_id, idx));
CREATE TABLE stats(job_id TEXT NOT NULL, step INTEGER NOT NULL, record BLOB NOT NULL,
                   PRIMARY KEY(job_id, step));
CREATE TABLE checkpoints(id TEXT PRIMARY KEY, job_id TEXT NOT NULL, step INTEGER NOT NULL,
                         blob_path TEXT NOT NULL, deleting INTEGER NOT NULL DEFAULT 0,
                         record BLOB NOT NULL);
CREATE TABLE workers(id TEXT PRIMARY KEY, record BLOB NOT NULL);
PRAGMA user_version=1;
)sql")
                    .ok());
    dino::v1::CheckpointInfo info;
    info.set_id("ckpt-7");
    info.set_job_id("job-3");
    info.set_step(40);
    auto insert = (*db)->Prepare(
        "INSERT INTO checkpoints(id, job_id, step, blob_path, record) VALUES(?, ?, ?, ?, ?)");
    ASSERT_TRUE(insert.ok());
    (*insert)
        ->Bind(1, "ckpt-7")
        .Bind(2, "job-3")
        .Bind(3, int64_t{40})
        .Bind(4, "/var/lib/dino/data/checkpoints/job-3/ckpt-7.ckpt")
        .BindBlob(5, info.SerializeAsString());
    ASSERT_TRUE((*insert)->Run().ok());
  }
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->SchemaVersion(), 2);
  auto rows = (*store)->ListCheckpoints("job-3", false);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].blob_path, "job-3/ckpt-7.ckpt");
  EXPECT_EQ((*rows)[0].info.step(), 40);
}

TEST(StoreTest, SequencesNeverRepeatAcrossReopen) {
  const std::string path = testing::NewTempDir("seq") + "/db";
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    EXPECT_EQ(*(*store)->NextSequence("job"), 1);
    EXPECT_EQ(*(*store)->NextSequence("job"), 2);
    EXPECT_EQ(*(*store)->NextSequence("worker"), 1);
  }
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*(*store)->NextSequence("job"), 3);
  EXPECT_EQ(*(*store)->SchemaVersion(), 2);  // Reopening does not migrate again.
}

TEST(StoreTest, JobsEventsStatsCheckpointsAndWorkersSurviveReopen) {
  const std::string path = testing::NewTempDir("reopen") + "/db";
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    dino::v1::Job job;
    job.set_id("job-1");
    job.set_state(dino::v1::JOB_STATE_RUNNING);
    job.mutable_spec()->set_request_id("r1");
    job.add_attempts()->set_number(1);
    dino::v1::JobEvent e1, e2;
    e1.set_job_id("job-1");
    e1.set_index(1);
    e2.set_job_id("job-1");
    e2.set_index(2);
    e2.mutable_progress()->set_step(10);
    ASSERT_TRUE((*store)->SaveJob(job, {e1, e2}).ok());
    dino::v1::StepStats s;
    s.set_step(10);
    s.set_loss(3.5);
    ASSERT_TRUE((*store)->AppendStats("job-1", {s}).ok());
    s.set_loss(99);  // A re-sent step is ignored.
    ASSERT_TRUE((*store)->AppendStats("job-1", {s}).ok());
    StoredCheckpoint c;
    c.info.set_id("ckpt-1");
    c.info.set_job_id("job-1");
    c.info.set_step(10);
    c.blob_path = "/x/ckpt-1.ckpt";
    ASSERT_TRUE((*store)->InsertCheckpoint(c).ok());
    dino::v1::WorkerInfo w;
    w.set_id("w-1");
    w.set_state(dino::v1::WORKER_STATE_BUSY);
    ASSERT_TRUE((*store)->SaveWorker(w).ok());
  }
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].state(), dino::v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*jobs)[0].attempts_size(), 1);
  auto events = (*store)->ListEvents("job-1", 1, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].progress().step(), 10);
  auto stats = (*store)->ListStats("job-1", 0, -1);
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].loss(), 3.5);
  auto checkpoints = (*store)->ListCheckpoints("job-1", false);
  ASSERT_TRUE(checkpoints.ok());
  ASSERT_EQ(checkpoints->size(), 1u);
  EXPECT_EQ((*checkpoints)[0].blob_path, "/x/ckpt-1.ckpt");
  auto workers = (*store)->LoadWorkers();
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].state(), dino::v1::WORKER_STATE_BUSY);
}

TEST(StoreTest, DuplicateEventIndexRollsBackTheWholeTransaction) {
  auto store = OpenSqliteStore(":memory:");
  ASSERT_TRUE(store.ok());
  dino::v1::Job job;
  job.set_id("job-1");
  job.set_state(dino::v1::JOB_STATE_QUEUED);
  dino::v1::JobEvent e;
  e.set_job_id("job-1");
  e.set_index(1);
  ASSERT_TRUE((*store)->SaveJob(job, {e}).ok());
  job.set_state(dino::v1::JOB_STATE_RUNNING);
  EXPECT_FALSE((*store)->SaveJob(job, {e}).ok());
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ((*jobs)[0].state(), dino::v1::JOB_STATE_QUEUED);
}

TEST(StoreTest, CheckpointsMarkedDeletingAreHidden) {
  auto store = OpenSqliteStore(":memory:");
  ASSERT_TRUE(store.ok());
  StoredCheckpoint c;
  c.info.set_id("ckpt-1");
  c.info.set_job_id("job-1");
  c.blob_path = "/x";
  ASSERT_TRUE((*store)->InsertCheckpoint(c).ok());
  ASSERT_TRUE((*store)->MarkCheckpointDeleting("ckpt-1").ok());
  EXPECT_TRUE((*store)->ListCheckpoints("job-1", false)->empty());
  auto all = (*store)->ListCheckpoints("", true);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_TRUE((*all)[0].deleting);
  ASSERT_TRUE((*store)->DeleteCheckpoint("ckpt-1").ok());
  EXPECT_TRUE((*store)->ListCheckpoints("", true)->empty());
}

}  // namespace
}  // namespace dino::server
