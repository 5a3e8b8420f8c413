// WatchHub on a SQLite store in memory: the replay of stored events, its bound, and the fan-out of
// committed events to the watchers of a job.
#include "server/watch_hub.h"

#include <memory>
#include <string>
#include <vector>

#include "common/watch_resume.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using dino::v1::JobEvent;
using testing::RecordingSink;

JobEvent StateEvent(int64_t index, const std::string& job_id = "job-1") {
  JobEvent event;
  event.set_index(index);
  event.set_job_id(job_id);
  event.mutable_state_change()->set_to_state(dino::v1::JOB_STATE_RUNNING);
  return event;
}

JobEvent ProgressEvent(int64_t index, const std::string& job_id = "job-1") {
  JobEvent event;
  event.set_index(index);
  event.set_job_id(job_id);
  event.mutable_progress()->set_step(index * 10);
  return event;
}

std::vector<int64_t> Indices(const std::vector<JobEvent>& events) {
  std::vector<int64_t> out;
  for (const JobEvent& event : events) out.push_back(event.index());
  return out;
}

class WatchHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteStore(":memory:");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    hub_ = std::make_unique<WatchHub>(store_.get());
  }

  // Stores `events` as the events of `job_id`.
  void StoreEvents(const std::vector<JobEvent>& events, const std::string& job_id = "job-1") {
    dino::v1::Job job;
    job.set_id(job_id);
    job.set_state(dino::v1::JOB_STATE_RUNNING);
    if (!events.empty()) job.set_last_event_index(events.back().index());
    ASSERT_TRUE(store_->SaveJob(job, events).ok());
  }

  std::unique_ptr<Store> store_;
  std::unique_ptr<WatchHub> hub_;
};

TEST_F(WatchHubTest, ReplaysTheStoredEventsAfterTheIndexThenRegisters) {
  StoreEvents({StateEvent(1), ProgressEvent(2), ProgressEvent(3)});
  RecordingSink sink;
  absl::StatusOr<int64_t> token = hub_->Watch("job-1", 1, false, &sink, 0, /*job_ended=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_GT(*token, 0);
  EXPECT_EQ(Indices(sink.events()), std::vector<int64_t>({2, 3}));
  EXPECT_FALSE(sink.ended());
  EXPECT_EQ(hub_->size(), 1u);
}

TEST_F(WatchHubTest, AnEndedJobEndsTheWatchAfterItsReplay) {
  StoreEvents({StateEvent(1), StateEvent(2)});
  RecordingSink sink;
  EXPECT_EQ(*hub_->Watch("job-1", 0, false, &sink, 0, /*job_ended=*/true), 0);
  EXPECT_EQ(Indices(sink.events()), std::vector<int64_t>({1, 2}));
  EXPECT_TRUE(sink.ended());
  EXPECT_TRUE(sink.end_status().ok());
  EXPECT_EQ(hub_->size(), 0u);
}

TEST_F(WatchHubTest, ABacklogLongerThanTheBoundEndsWithAResumeError) {
  StoreEvents({StateEvent(1), StateEvent(2), StateEvent(3), StateEvent(4), StateEvent(5)});
  RecordingSink sink;
  EXPECT_EQ(*hub_->Watch("job-1", 0, false, &sink, /*max_backlog=*/2, false), 0);
  EXPECT_EQ(Indices(sink.events()), std::vector<int64_t>({1, 2}));
  EXPECT_TRUE(sink.ended());
  EXPECT_TRUE(IsWatchResume(sink.end_status())) << sink.end_status();
  EXPECT_EQ(hub_->size(), 0u);
  // Resuming after the last index received goes on from there.
  RecordingSink resumed;
  EXPECT_EQ(*hub_->Watch("job-1", 2, false, &resumed, 2, false), 0);
  EXPECT_EQ(Indices(resumed.events()), std::vector<int64_t>({3, 4}));
}

TEST_F(WatchHubTest, ABacklogOfExactlyTheBoundIsReplayedInPagesAndRegisters) {
  StoreEvents({StateEvent(1), ProgressEvent(2), StateEvent(3), StateEvent(4)});
  RecordingSink sink;
  // Progress is skipped and does not count against the bound.
  absl::StatusOr<int64_t> token = hub_->Watch("job-1", 0, /*skip_progress=*/true, &sink, 3, false);
  ASSERT_TRUE(token.ok());
  EXPECT_GT(*token, 0);
  EXPECT_EQ(Indices(sink.events()), std::vector<int64_t>({1, 3, 4}));
  EXPECT_FALSE(sink.ended());
}

TEST_F(WatchHubTest, PublishReachesOnlyTheWatchersOfTheJob) {
  StoreEvents({StateEvent(1)});
  StoreEvents({StateEvent(1, "job-2")}, "job-2");
  RecordingSink one, other, quiet;
  ASSERT_TRUE(hub_->Watch("job-1", 1, false, &one, 0, false).ok());
  ASSERT_TRUE(hub_->Watch("job-1", 1, /*skip_progress=*/true, &quiet, 0, false).ok());
  ASSERT_TRUE(hub_->Watch("job-2", 1, false, &other, 0, false).ok());
  const std::vector<JobEvent> events = {ProgressEvent(2), StateEvent(3)};
  hub_->Publish("job-1", events, /*job_ended=*/false);
  EXPECT_EQ(Indices(one.events()), std::vector<int64_t>({2, 3}));
  EXPECT_EQ(Indices(quiet.events()), std::vector<int64_t>({3}));
  EXPECT_TRUE(other.events().empty());
  EXPECT_FALSE(one.ended());
  EXPECT_EQ(hub_->size(), 3u);
}

TEST_F(WatchHubTest, TheEventThatEndsTheJobEndsItsWatchers) {
  StoreEvents({StateEvent(1)});
  RecordingSink sink;
  ASSERT_TRUE(hub_->Watch("job-1", 1, false, &sink, 0, false).ok());
  const std::vector<JobEvent> events = {StateEvent(2)};
  hub_->Publish("job-1", events, /*job_ended=*/true);
  EXPECT_EQ(Indices(sink.events()), std::vector<int64_t>({2}));
  EXPECT_TRUE(sink.ended());
  EXPECT_TRUE(sink.end_status().ok());
  EXPECT_EQ(hub_->size(), 0u);
}

TEST_F(WatchHubTest, ARemovedWatcherGetsNothingMore) {
  StoreEvents({StateEvent(1)});
  RecordingSink sink;
  absl::StatusOr<int64_t> token = hub_->Watch("job-1", 1, false, &sink, 0, false);
  ASSERT_TRUE(token.ok());
  hub_->Remove(*token);
  hub_->Remove(*token);  // Twice, or after the end: ignored.
  const std::vector<JobEvent> events = {StateEvent(2)};
  hub_->Publish("job-1", events, true);
  EXPECT_TRUE(sink.events().empty());
  EXPECT_FALSE(sink.ended());
}

TEST_F(WatchHubTest, TokensAreNeverReused) {
  StoreEvents({StateEvent(1)});
  RecordingSink a, b;
  const int64_t first = *hub_->Watch("job-1", 1, false, &a, 0, false);
  hub_->Remove(first);
  const int64_t second = *hub_->Watch("job-1", 1, false, &b, 0, false);
  EXPECT_NE(first, second);
}

TEST_F(WatchHubTest, EndAllEndsEveryWatcherWithTheStatus) {
  StoreEvents({StateEvent(1)});
  StoreEvents({StateEvent(1, "job-2")}, "job-2");
  RecordingSink a, b;
  ASSERT_TRUE(hub_->Watch("job-1", 1, false, &a, 0, false).ok());
  ASSERT_TRUE(hub_->Watch("job-2", 1, false, &b, 0, false).ok());
  hub_->EndAll(absl::UnavailableError("shutting down"));
  EXPECT_EQ(a.end_status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b.end_status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hub_->size(), 0u);
}

}  // namespace
}  // namespace dino::server
