// Slow and lossy links: the same 2-rank job on a clean link and with 50 ms of delay and 1% loss
// on every host (so between the ranks and to the coordinator), on the same test hosts. Training
// is deterministic from the seed, so every reported loss must be the same; the figures give the
// slowdown.
#include <string>
#include <vector>

#include "tests/cluster/fault_fixture.h"

namespace dino::cluster {
namespace {

using dino::v1::Job;

// The loss of every progress report of job `id`, in step order.
std::vector<double> Losses(const std::vector<dino::v1::JobEvent>& events) {
  std::vector<double> losses;
  for (const auto& e : events) {
    if (e.has_progress()) losses.push_back(e.progress().loss());
  }
  return losses;
}

double AttemptSeconds(const Job& job) {
  const auto& a = job.attempts(job.attempts_size() - 1);
  return static_cast<double>(a.end_time().seconds() - a.start_time().seconds()) +
         (a.end_time().nanos() - a.start_time().nanos()) * 1e-9;
}

TEST_F(NetworkFaultTest, SlowLossyLinksGiveTheSameTrainingAsACleanOne) {
  AddWorkerHosts(2);
  cluster_->StartCoordinator();
  cluster_->StartWorker(0);
  cluster_->StartWorker(1);
  const dino::v1::JobSpec spec = e2e::TinySpec(2, 2);

  ASSERT_OK_AND_ASSIGN(clean_job, cluster_->Submit(spec));
  ASSERT_OK_AND_ASSIGN(clean, cluster_->WaitTerminal(clean_job.id(), e2e::kJobTimeout));
  ASSERT_EQ(clean.state(), dino::v1::JOB_STATE_SUCCEEDED) << clean.DebugString();
  ASSERT_OK_AND_ASSIGN(clean_events, AllEvents(clean_job.id()));

  for (const TestHost& host : {coordinator_host_, worker_hosts_[0], worker_hosts_[1]}) {
    absl::Status shaped = net_->Shape(host, absl::Milliseconds(50), 1.0);
    if (absl::IsUnavailable(shaped)) GTEST_SKIP() << shaped.message();
    ASSERT_TRUE(shaped.ok()) << shaped;
  }
  ASSERT_OK_AND_ASSIGN(slow_job, cluster_->Submit(spec));
  ASSERT_OK_AND_ASSIGN(slow, cluster_->WaitTerminal(slow_job.id(), e2e::kJobTimeout));
  ASSERT_EQ(slow.state(), dino::v1::JOB_STATE_SUCCEEDED) << slow.DebugString();
  ASSERT_OK_AND_ASSIGN(slow_events, AllEvents(slow_job.id()));
  const TestNetwork::ShapedPackets packets = net_->StopShaping();

  EXPECT_EQ(slow.attempts_size(), 1) << slow.DebugString();
  EXPECT_EQ(slow.latest_stats().step(), clean.latest_stats().step());
  EXPECT_EQ(slow.latest_stats().loss(), clean.latest_stats().loss());
  const std::vector<double> clean_losses = Losses(clean_events);
  ASSERT_FALSE(clean_losses.empty());
  EXPECT_EQ(Losses(slow_events), clean_losses);
  EXPECT_GT(packets.dropped, 0) << "the shapers dropped nothing: the link was not lossy";

  Figure("clean link: attempt", AttemptSeconds(clean), "s");
  Figure("50 ms + 1% loss: attempt", AttemptSeconds(slow), "s");
  Figure("slowdown", AttemptSeconds(slow) / AttemptSeconds(clean), "x");
  Figure("packets dropped by the shapers", static_cast<double>(packets.dropped), "");
  Figure("packets delayed by the shapers", static_cast<double>(packets.passed), "");
  Figure("final loss", slow.latest_stats().loss(), "");
}

}  // namespace
}  // namespace dino::cluster
