// WithStoreMetrics: SQLite write latency on the injected clock and the checkpoint bytes gauge,
// including checkpoints already in the store when the coordinator starts.
#include "server/coordinator_metrics.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace dino::server {
namespace {

// Every reading of the time moves it 10 ms forward, so each timed write lasts exactly 10 ms.
class SteppingClock final : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    now_ += absl::Milliseconds(10);
    return now_;
  }
  void SleepUntil(absl::Time) override {}

 private:
  mutable absl::Mutex mu_;
  mutable absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1'000'000'000);
};

StoredCheckpoint Checkpoint(const std::string& id, int64_t bytes) {
  StoredCheckpoint c;
  c.info.set_id(id);
  c.info.set_job_id("job-1");
  c.info.set_size_bytes(bytes);
  c.blob_path = "/x/" + id;
  return c;
}

TEST(CoordinatorMetricsTest, StoreWritesAreTimedAndCheckpointBytesFollowTheRows) {
  auto sqlite = OpenSqliteStore(":memory:");
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  ASSERT_TRUE((*sqlite)->InsertCheckpoint(Checkpoint("ckpt-1", 100)).ok());  // Before a restart.

  metrics::Registry registry;
  auto m = CoordinatorMetrics::Create(&registry);
  ASSERT_TRUE(m.ok()) << m.status();
  SteppingClock clock;
  auto store = WithStoreMetrics(std::move(*sqlite), **m, &clock);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*m)->checkpoint_bytes->Value(), 100);
  EXPECT_EQ((*m)->sqlite_write_seconds->Collect().count, 0u);  // Reads are not timed.

  ASSERT_TRUE((*store)->InsertCheckpoint(Checkpoint("ckpt-2", 50)).ok());
  EXPECT_EQ((*m)->checkpoint_bytes->Value(), 150);
  ASSERT_TRUE((*store)->MarkCheckpointDeleting("ckpt-1").ok());
  EXPECT_EQ((*m)->checkpoint_bytes->Value(), 150);  // Its file is still on disk.
  ASSERT_TRUE((*store)->DeleteCheckpoint("ckpt-1").ok());
  EXPECT_EQ((*m)->checkpoint_bytes->Value(), 50);
  ASSERT_TRUE((*store)->NextSequence("job").ok());
  auto listed = (*store)->ListCheckpoints("job-1", false);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].info.id(), "ckpt-2");

  const metrics::Histogram::Snapshot writes = (*m)->sqlite_write_seconds->Collect();
  EXPECT_EQ(writes.count, 4u);  // insert, mark, delete, sequence
  EXPECT_DOUBLE_EQ(writes.sum, 0.04);
  const std::string out = registry.Render();
  EXPECT_TRUE(absl::StrContains(out, "\ndino_checkpoint_bytes 50\n")) << out;
  EXPECT_TRUE(absl::StrContains(out, "\ndino_sqlite_write_seconds_count 4\n")) << out;
}

}  // namespace
}  // namespace dino::server
