// Coordinator::Watch: the backlog, then live events, bounded replays.
#include <memory>
#include <string>

#include "common/watch_resume.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/server/coordinator_fixture.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using testing::RecordingSink;

class CoordinatorWatchTest : public testing::CoordinatorFixture {};

TEST_F(CoordinatorWatchTest, WatchDeliversBacklogThenLiveEventsAndEndsAtTerminal) {
  const std::string job = Submit(testing::TinySpec());
  RecordingSink sink;
  auto token = coordinator_->Watch(job, 0, false, &sink);
  ASSERT_TRUE(token.ok());
  ASSERT_EQ(sink.events().size(), 1u);  // QUEUED.
  TestWorker a = AddWorker();
  dino::v1::ReportProgressRequest progress = ProgressFrom(a, job);
  progress.add_stats()->set_step(10);
  progress.add_stats()->set_step(20);
  ASSERT_TRUE(coordinator_->ReportProgress(progress).ok());
  ASSERT_TRUE(coordinator_->ReportProgress(progress).ok());  // Re-sent: no new events.
  ASSERT_TRUE(Result(job, 1, a, 0, dino::v1::ATTEMPT_OUTCOME_SUCCEEDED).ok());
  auto events = sink.events();
  ASSERT_EQ(events.size(), 5u);  // QUEUED, RUNNING, 2 progress, SUCCEEDED.
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].index(), int64_t(i + 1));
  EXPECT_EQ(events[4].state_change().to_state(), dino::v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(sink.ended());
  EXPECT_TRUE(sink.end_status().ok());
  // Resuming after index 3 replays the rest and ends at once.
  RecordingSink resumed;
  EXPECT_EQ(*coordinator_->Watch(job, 3, false, &resumed), 0);
  EXPECT_EQ(resumed.events().size(), 2u);
  EXPECT_TRUE(resumed.ended());
}

TEST_F(CoordinatorWatchTest, WatchReplaysABoundedBacklogInPagesAndMissesNothing) {
  const std::string job = Submit(testing::TinySpec());
  TestWorker a = AddWorker();
  dino::v1::ReportProgressRequest progress = ProgressFrom(a, job);
  for (int step = 0; step < 20; ++step) {
    auto* stats = progress.add_stats();  // Healthy figures: no collapse warning among them.
    stats->set_step(step);
    stats->set_loss(5.0);
    stats->set_kl(0.3);
    stats->set_batch_mean_entropy(2.0);
  }
  ASSERT_TRUE(coordinator_->ReportProgress(progress).ok());  // Events 3..22.
  ASSERT_EQ(coordinator_->GetJob(job)->last_event_index(), 22);
  // 22 events at 8 per replay: cut off after 8, and the resumed replay goes on from there.
  RecordingSink first;
  EXPECT_EQ(*coordinator_->Watch(job, 0, false, &first, 8), 0);
  ASSERT_EQ(first.events().size(), 8u);
  EXPECT_EQ(first.events().back().index(), 8);
  ASSERT_TRUE(first.ended());
  EXPECT_EQ(first.end_status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsWatchResume(first.end_status())) << first.end_status();
  RecordingSink rest;
  auto token = coordinator_->Watch(job, 16, false, &rest, 8);
  ASSERT_TRUE(token.ok());
  EXPECT_GT(*token, 0);  // 6 events left: it stays registered.
  EXPECT_EQ(rest.events().size(), 6u);
  coordinator_->Unwatch(*token);
  // Without progress only QUEUED and RUNNING are sent, read in pages of 8 across all 22, and
  // the next live event (index 23) follows them with no gap.
  RecordingSink quiet;
  token = coordinator_->Watch(job, 0, true, &quiet, 8);
  ASSERT_TRUE(token.ok());
  EXPECT_GT(*token, 0);
  EXPECT_FALSE(quiet.ended());
  ASSERT_TRUE(coordinator_->CancelJob(job, "done").ok());
  auto events = quiet.events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0].index(), 1);
  EXPECT_EQ(events[1].index(), 2);
  EXPECT_EQ(events[2].index(), 23);
  coordinator_->Unwatch(*token);
}

}  // namespace
}  // namespace dino::server
