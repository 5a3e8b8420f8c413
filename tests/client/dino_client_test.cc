// DinoClient against the in-process FakeCoordinator: idempotent submit under a forced retry,
// retries only for UNAVAILABLE, pagination, watch resume across a coordinator restart, and
// checkpoint downloads (resumed, corrupted).
#include "client/dino_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/sha256.h"
#include "tests/client/fake_coordinator.h"

namespace dino::client {
namespace {

using ::testing::ElementsAre;
using testing::FakeCoordinator;
using ::testing::HasSubstr;

DinoClientOptions FastOptions(const std::string& target) {
  DinoClientOptions options;
  options.target = target;
  options.timeout = absl::Seconds(5);
  options.backoff = BackoffOptions{absl::Milliseconds(5), absl::Milliseconds(50)};
  options.reconnect_window = absl::Seconds(20);
  return options;
}

dino::v1::JobEvent StateChange(dino::v1::JobState from, dino::v1::JobState to) {
  dino::v1::JobEvent e;
  e.mutable_state_change()->set_from_state(from);
  e.mutable_state_change()->set_to_state(to);
  return e;
}

dino::v1::JobEvent Progress(int64_t step) {
  dino::v1::JobEvent e;
  e.mutable_progress()->set_step(step);
  e.mutable_progress()->set_total_steps(100);
  return e;
}

class DinoClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    coordinator_.Start();
    client_ = DinoClient::Create(FastOptions(coordinator_.address()));
  }
  FakeCoordinator coordinator_;
  std::unique_ptr<DinoClient> client_;
};

TEST_F(DinoClientTest, SubmitGeneratesARequestIdAndRetriesWithoutMakingTwoJobs) {
  coordinator_.service().LoseSubmitResponses(1);
  dino::v1::JobSpec spec;
  spec.set_name("retried");
  auto response = client_->SubmitJob(spec);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(coordinator_.service().submit_calls(), 2);
  EXPECT_EQ(coordinator_.service().job_count(), 1);
  EXPECT_FALSE(response->created());  // The retry found the first submission.
  EXPECT_EQ(response->job().spec().name(), "retried");
  EXPECT_THAT(response->job().spec().request_id(), ::testing::StartsWith("req-"));
}

TEST_F(DinoClientTest, SubmitKeepsTheSpecsRequestId) {
  dino::v1::JobSpec spec;
  spec.set_request_id("mine");
  auto first = client_->SubmitJob(spec);
  auto second = client_->SubmitJob(spec);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->job().id(), second->job().id());
  EXPECT_TRUE(first->created());
  EXPECT_FALSE(second->created());
  EXPECT_EQ(coordinator_.service().job_count(), 1);
}

TEST_F(DinoClientTest, GeneratedRequestIdsDiffer) {
  EXPECT_NE(GenerateRequestId(), GenerateRequestId());
  EXPECT_EQ(GenerateRequestId().size(), 4u + 32u);
}

TEST_F(DinoClientTest, RetriesUnavailableThenSucceeds) {
  dino::v1::Job job;
  job.set_id("job-9");
  coordinator_.service().AddJob(job);
  coordinator_.service().FailNextCalls(2);
  auto got = client_->GetJob("job-9");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id(), "job-9");
}

TEST_F(DinoClientTest, GivesUpAfterMaxAttempts) {
  coordinator_.service().FailNextCalls(10);
  auto got = client_->GetJob("job-9");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(DinoClientTest, OtherErrorsAreNotRetried) {
  auto got = client_->GetJob("missing");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(got.status().message(), HasSubstr("missing"));
}

TEST_F(DinoClientTest, UnreachableCoordinatorIsUnavailable) {
  coordinator_.Stop();
  auto got = client_->GetJob("job-1");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(DinoClientTest, ListJobsFollowsEveryPage) {
  coordinator_.service().SetPageSize(2);
  for (int i = 1; i <= 5; ++i) {
    dino::v1::Job job;
    job.set_id("job-" + std::to_string(i));
    coordinator_.service().AddJob(job);
  }
  auto jobs = client_->ListJobs({});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::vector<std::string> ids;
  for (const auto& j : *jobs) ids.push_back(j.id());
  EXPECT_THAT(ids, ElementsAre("job-5", "job-4", "job-3", "job-2", "job-1"));
}

TEST_F(DinoClientTest, WatchDeliversEventsUntilTheJobEnds) {
  dino::v1::Job job;
  job.set_id("job-1");
  coordinator_.service().AddJob(job);
  coordinator_.service().AppendEvent(
      "job-1", StateChange(dino::v1::JOB_STATE_UNSPECIFIED, dino::v1::JOB_STATE_QUEUED));
  coordinator_.service().AppendEvent("job-1", Progress(1));
  std::thread producer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    coordinator_.service().AppendEvent("job-1", Progress(2));
    coordinator_.service().AppendEvent(
        "job-1", StateChange(dino::v1::JOB_STATE_RUNNING, dino::v1::JOB_STATE_SUCCEEDED));
  });
  std::vector<int64_t> indexes;
  absl::Status status = client_->WatchJob("job-1", {}, [&](const dino::v1::JobEvent& e) {
    indexes.push_back(e.index());
    return true;
  });
  producer.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(indexes, ElementsAre(1, 2, 3, 4));
}

TEST_F(DinoClientTest, WatchResumesAfterACoordinatorRestart) {
  dino::v1::Job job;
  job.set_id("job-1");
  coordinator_.service().AddJob(job);
  coordinator_.service().AppendEvent(
      "job-1", StateChange(dino::v1::JOB_STATE_UNSPECIFIED, dino::v1::JOB_STATE_RUNNING));
  coordinator_.service().AppendEvent("job-1", Progress(1));
  std::vector<int64_t> indexes;
  int reconnects = 0;
  std::thread restarter;
  absl::Status status = client_->WatchJob(
      "job-1", {},
      [&](const dino::v1::JobEvent& e) {
        indexes.push_back(e.index());
        if (e.index() == 2) {
          // The coordinator goes down after event 2 and comes back with more events.
          restarter = std::thread([&] {
            coordinator_.Stop();
            coordinator_.service().AppendEvent("job-1", Progress(2));
            absl::SleepFor(absl::Milliseconds(100));
            coordinator_.Start();
            coordinator_.service().AppendEvent(
                "job-1", StateChange(dino::v1::JOB_STATE_RUNNING, dino::v1::JOB_STATE_FAILED));
          });
        }
        return true;
      },
      [&](const absl::Status& why) {
        ++reconnects;
        EXPECT_EQ(why.code(), absl::StatusCode::kUnavailable);
      });
  restarter.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(indexes, ElementsAre(1, 2, 3, 4));  // Nothing lost, nothing twice.
  EXPECT_GE(reconnects, 1);
  EXPECT_GE(coordinator_.service().watch_calls(), 2);
}

// Real time that counts the client's backoff sleeps.
class SleepCountingClock final : public Clock {
 public:
  absl::Time Now() const override { return RealClock::Get()->Now(); }
  void SleepUntil(absl::Time deadline) override {
    ++sleeps;
    RealClock::Get()->SleepUntil(deadline);
  }
  std::atomic<int> sleeps{0};
};

TEST_F(DinoClientTest, WatchResumesAPagedReplayAtOnceAndQuietly) {
  dino::v1::Job job;
  job.set_id("job-1");
  coordinator_.service().AddJob(job);
  coordinator_.service().AppendEvent(
      "job-1", StateChange(dino::v1::JOB_STATE_UNSPECIFIED, dino::v1::JOB_STATE_RUNNING));
  for (int step = 1; step <= 9; ++step) coordinator_.service().AppendEvent("job-1", Progress(step));
  coordinator_.service().AppendEvent(
      "job-1", StateChange(dino::v1::JOB_STATE_RUNNING, dino::v1::JOB_STATE_SUCCEEDED));
  coordinator_.service().SetWatchPage(3);  // 11 events: 3 + 3 + 3 + 2.
  SleepCountingClock clock;
  DinoClientOptions options = FastOptions(coordinator_.address());
  options.clock = &clock;
  auto client = DinoClient::Create(options);
  std::vector<int64_t> indexes;
  int reconnects = 0;
  absl::Status status = client->WatchJob(
      "job-1", {},
      [&](const dino::v1::JobEvent& e) {
        indexes.push_back(e.index());
        return true;
      },
      [&](const absl::Status&) { ++reconnects; });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(indexes, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  EXPECT_EQ(coordinator_.service().watch_calls(), 4);
  EXPECT_EQ(reconnects, 0);
  EXPECT_EQ(clock.sleeps.load(), 0);

  // The same end with no event (a broken server) is a failure like any other: retried with
  // backoff and reported, and returned once the retries are used up.
  coordinator_.service().SetWatchPage(0);
  status = client->WatchJob(
      "job-1", {}, [&](const dino::v1::JobEvent&) { return true; },
      [&](const absl::Status&) { ++reconnects; });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_GE(reconnects, 1);
  EXPECT_GE(clock.sleeps.load(), 1);
}

TEST_F(DinoClientTest, WatchStopsWhenTheCallbackSaysSo) {
  dino::v1::Job job;
  job.set_id("job-1");
  coordinator_.service().AddJob(job);
  coordinator_.service().AppendEvent("job-1", Progress(1));
  coordinator_.service().AppendEvent("job-1", Progress(2));
  int seen = 0;
  absl::Status status = client_->WatchJob("job-1", {}, [&](const dino::v1::JobEvent&) {
    ++seen;
    return false;
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen, 1);
}

TEST_F(DinoClientTest, WatchOfAnUnknownJobIsNotFound) {
  absl::Status status =
      client_->WatchJob("nope", {}, [](const dino::v1::JobEvent&) { return true; });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
}

class DownloadTest : public DinoClientTest {
 protected:
  void SetUp() override {
    DinoClientTest::SetUp();
    for (int i = 0; i < 10000; ++i) blob_.push_back(static_cast<char>(i * 31 % 251));
    dino::v1::CheckpointInfo info;
    info.set_id("ckpt-1");
    info.set_job_id("job-1");
    info.set_size_bytes(static_cast<int64_t>(blob_.size()));
    info.set_sha256(Sha256::Of(blob_));
    coordinator_.service().AddCheckpoint(info, blob_);
    coordinator_.service().SetChunkSize(1000);
  }
  absl::StatusOr<dino::v1::CheckpointInfo> Download(std::string* out) {
    return client_->DownloadCheckpoint("job-1", "", [out](absl::string_view data) {
      out->append(data.data(), data.size());
      return absl::OkStatus();
    });
  }
  std::string blob_;
};

TEST_F(DownloadTest, DownloadsAndVerifies) {
  std::string got;
  std::vector<int64_t> progress;
  auto info = client_->DownloadCheckpoint(
      "job-1", "ckpt-1",
      [&](absl::string_view data) {
        got.append(data.data(), data.size());
        return absl::OkStatus();
      },
      [&](int64_t received, int64_t total) {
        EXPECT_EQ(total, 10000);
        progress.push_back(received);
      });
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(got, blob_);
  EXPECT_EQ(progress.size(), 10u);
  EXPECT_EQ(progress.back(), 10000);
}

TEST_F(DownloadTest, ACorruptedStreamIsRejected) {
  coordinator_.service().CorruptDownloads(true);
  std::string got;
  auto info = Download(&got);
  ASSERT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(info.status().message(), HasSubstr("sha256 mismatch"));
}

TEST_F(DownloadTest, ABrokenStreamResumesAtTheByteReached) {
  coordinator_.service().BreakNextDownloadAfter(4);
  std::string got;
  auto info = Download(&got);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(got, blob_);
  EXPECT_THAT(coordinator_.service().download_offsets(), ElementsAre(0, 4000));
}

TEST_F(DownloadTest, ASinkErrorAbortsTheDownload) {
  auto info = client_->DownloadCheckpoint(
      "job-1", "", [](absl::string_view) { return absl::ResourceExhaustedError("disk full"); });
  EXPECT_EQ(info.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(DownloadTest, AnUnknownCheckpointIsNotFound) {
  std::string got;
  auto info = client_->DownloadCheckpoint("job-1", "ckpt-404",
                                          [](absl::string_view) { return absl::OkStatus(); });
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dino::client
