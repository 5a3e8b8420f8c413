// Coordinator faults across test hosts while a 2-rank job trains: the coordinator's host cut off
// the network (shorter, then longer than the worker timeout), and the coordinator killed and
// restarted on another address of its host. Each test prints its figures.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cluster/fault_fixture.h"

namespace dino::cluster {
namespace {

using dino::v1::Job;
using dino::v1::JobEvent;

bool HasCheckpoint(const Job& j) { return !j.latest_checkpoint_id().empty(); }

// The progress and checkpoint steps of each attempt, in the order the coordinator stored them.
struct AttemptSteps {
  std::vector<int64_t> progress;
  std::vector<int64_t> checkpoints;
};
std::vector<AttemptSteps> StepsByAttempt(const std::vector<JobEvent>& events) {
  std::vector<AttemptSteps> attempts;
  for (const JobEvent& e : events) {
    if (e.has_state_change() && e.state_change().to_state() == dino::v1::JOB_STATE_RUNNING) {
      attempts.emplace_back();
    } else if (e.has_progress() && !attempts.empty()) {
      attempts.back().progress.push_back(e.progress().step());
    } else if (e.has_checkpoint() && !attempts.empty()) {
      attempts.back().checkpoints.push_back(e.checkpoint().step());
    }
  }
  return attempts;
}

// Every report of `steps` is `every` after the one before it: none lost, none twice.
void ExpectEvenlySpaced(const std::vector<int64_t>& steps, int64_t every, const std::string& what) {
  for (size_t i = 1; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i] - steps[i - 1], every)
        << what << " " << i << ": step " << steps[i - 1] << " then " << steps[i];
  }
}

// A cut shorter than the worker timeout costs nothing: training goes on, and the progress and the
// checkpoint that fell due during the cut arrive afterwards, each once. A longer cut makes the
// coordinator end the attempt; when the link comes back the workers drop it (their late reports
// are refused) and the job runs one new attempt on them, never two gangs at once.
TEST_F(NetworkFaultTest, CoordinatorCutOffShortThenLongerThanTheWorkerTimeout) {
  AddWorkerHosts(2);
  cluster_->worker_timeout = "6s";
  cluster_->StartCoordinator();
  cluster_->StartWorker(0);
  cluster_->StartWorker(1);
  dino::v1::JobSpec spec = e2e::TinySpec(2, 14);
  ASSERT_OK_AND_ASSIGN(job, cluster_->Submit(spec));
  ASSERT_OK_AND_ASSIGN(first, cluster_->WaitFor(job.id(), HasCheckpoint, e2e::kJobTimeout));

  // Short: 2 s.
  ASSERT_TRUE(net_->Disconnect(coordinator_host_).ok());
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(net_->Reconnect(coordinator_host_).ok());
  const absl::Time back = absl::Now();
  ASSERT_OK_AND_ASSIGN(
      caught_up, cluster_->WaitFor(
                     job.id(),
                     [&](const Job& j) {
                       return j.latest_stats().step() >= first.latest_stats().step() + 12;
                     },
                     e2e::kJobTimeout));
  Figure("short cut: reconnect to the cut's progress delivered",
         absl::ToDoubleSeconds(absl::Now() - back), "s");
  EXPECT_EQ(caught_up.attempts_size(), 1) << caught_up.DebugString();
  for (int i : {0, 1}) {
    ASSERT_OK_AND_ASSIGN(w, WorkerNamed(absl::StrCat("worker-", i)));
    EXPECT_EQ(w.state(), dino::v1::WORKER_STATE_BUSY) << w.DebugString();
  }

  // Long: 10 s, beyond the 6 s worker timeout.
  ASSERT_OK_AND_ASSIGN(before_long, cluster_->GetJob(job.id()));
  ASSERT_TRUE(net_->Disconnect(coordinator_host_).ok());
  const absl::Time cut = absl::Now();
  absl::SleepFor(absl::Seconds(10));
  ASSERT_TRUE(net_->Reconnect(coordinator_host_).ok());
  const absl::Time reconnected = absl::Now();
  ASSERT_OK_AND_ASSIGN(
      second, cluster_->WaitFor(
                  job.id(),
                  [](const Job& j) {
                    return j.attempts_size() >= 2 &&
                           j.attempts(1).state() == dino::v1::ATTEMPT_STATE_RUNNING;
                  },
                  e2e::kJobTimeout));
  Figure("long cut: reconnect to the new attempt running",
         absl::ToDoubleSeconds(absl::Now() - reconnected), "s");
  EXPECT_EQ(second.attempts(0).failure_reason(), dino::v1::FAILURE_REASON_WORKER_LOST)
      << second.DebugString();
  Figure("long cut: steps redone",
         before_long.latest_stats().step() + 1 - second.attempts(1).resume_step(),
         "steps");
  // Each worker dropped the old attempt (refused or told to) before it was given the new one.
  for (int i : {0, 1}) {
    ASSERT_OK_AND_ASSIGN(dropped, WaitForWorkerLog(i, cut,
                                                   {"no longer runs this attempt",
                                                    "dropping the attempt", ": abort ("},
                                                   absl::Seconds(30)));
    ASSERT_OK_AND_ASSIGN(assigned, WaitForWorkerLog(i, cut,
                                                    {absl::StrCat("assignment: ", job.id(),
                                                                  " attempt 2")},
                                                    absl::Seconds(30)));
    EXPECT_LE(dropped, assigned) << "worker-" << i << " held two attempts";
  }

  ASSERT_OK_AND_ASSIGN(done, cluster_->WaitTerminal(job.id(), e2e::kJobTimeout));
  EXPECT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.attempts_size(), 2) << done.DebugString();

  // Nothing lost and nothing twice: attempt 1's progress (every 2 steps) and checkpoints (every 4)
  // are evenly spaced across the short cut; attempt 2 only moves forward.
  ASSERT_OK_AND_ASSIGN(events, AllEvents(job.id()));
  std::vector<AttemptSteps> attempts = StepsByAttempt(events);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_GT(attempts[0].progress.size(), 6u);
  ExpectEvenlySpaced(attempts[0].progress, spec.progress_every_steps(), "attempt 1 progress");
  // A checkpoint that a newer one superseded on the worker's disk while the coordinator could
  // not be reached (keep_last) is skipped; none arrives twice or out of order.
  for (size_t i = 1; i < attempts[0].checkpoints.size(); ++i) {
    EXPECT_GT(attempts[0].checkpoints[i], attempts[0].checkpoints[i - 1]);
    EXPECT_EQ(attempts[0].checkpoints[i] % spec.checkpoint().every_steps(), 0);
  }
  for (size_t i = 1; i < attempts[1].progress.size(); ++i) {
    EXPECT_GT(attempts[1].progress[i], attempts[1].progress[i - 1]);
  }
  EXPECT_LE(attempts[0].progress.back(), before_long.latest_stats().step() + 2 * 6)
      << "progress of the ended attempt was accepted after the cut";
}

// The coordinator is killed (-9) and comes back on another address of the same host. Workers
// and the client dial a gRPC target that names both addresses; they find it there, and every
// checkpoint acknowledged before the kill is still listed, with the same bytes.
TEST_F(NetworkFaultTest, CoordinatorKilledAndRestartedOnAnotherAddress) {
  AddWorkerHosts(2);
  ASSERT_OK_AND_ASSIGN(second_address, net_->AddAddress(coordinator_host_));
  const int port = cluster_->coordinator_port();
  cluster_->SetCoordinatorTarget(absl::StrCat("ipv4:", coordinator_host_.address, ":", port, ",",
                                              second_address, ":", port));
  cluster_->StartCoordinator();
  cluster_->StartWorker(0);
  cluster_->StartWorker(1);
  dino::v1::JobSpec spec = e2e::TinySpec(2, 10);
  spec.mutable_checkpoint()->set_keep_last(100);  // Every checkpoint stays listed.
  ASSERT_OK_AND_ASSIGN(job, cluster_->Submit(spec));
  ASSERT_OK_AND_ASSIGN(running, cluster_->WaitFor(
                                    job.id(),
                                    [](const Job& j) {
                                      return HasCheckpoint(j) && j.latest_stats().step() >= 8;
                                    },
                                    e2e::kJobTimeout));
  ASSERT_OK_AND_ASSIGN(acknowledged, cluster_->Checkpoints(job.id()));
  ASSERT_FALSE(acknowledged.empty());
  ASSERT_OK_AND_ASSIGN(at_kill, cluster_->GetJob(job.id()));

  cluster_->KillCoordinator();
  cluster_->PlaceCoordinator({coordinator_host_.netns, second_address});
  const absl::Time restart = absl::Now();
  cluster_->StartCoordinator();
  ASSERT_OK_AND_ASSIGN(moving, cluster_->WaitFor(
                                   job.id(),
                                   [&](const Job& j) {
                                     return j.latest_stats().step() >
                                            at_kill.latest_stats().step();
                                   },
                                   e2e::kJobTimeout));
  Figure("restart to progress again", absl::ToDoubleSeconds(absl::Now() - restart), "s");
  for (int i : {0, 1}) {
    ASSERT_OK_AND_ASSIGN(w, WorkerNamed(absl::StrCat("worker-", i)));
    EXPECT_NE(w.state(), dino::v1::WORKER_STATE_DEAD) << w.DebugString();
  }

  ASSERT_OK_AND_ASSIGN(done, cluster_->WaitTerminal(job.id(), e2e::kJobTimeout));
  EXPECT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  Figure("attempts", done.attempts_size(), "");
  EXPECT_GE(done.latest_stats().step(), at_kill.latest_stats().step());
  ASSERT_OK_AND_ASSIGN(after, cluster_->Checkpoints(job.id()));
  for (const auto& acked : acknowledged) {
    bool found = false;
    for (const auto& c : after) {
      if (c.id() != acked.id()) continue;
      found = true;
      EXPECT_EQ(c.sha256(), acked.sha256()) << c.id();
    }
    EXPECT_TRUE(found) << "acknowledged checkpoint " << acked.id() << " (step " << acked.step()
                       << ") was lost";
  }
}

}  // namespace
}  // namespace dino::cluster
