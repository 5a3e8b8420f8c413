// End to end: a worker of a running 2-rank job gets SIGTERM (what Kubernetes and `docker stop`
// send). It finishes its step, uploads the checkpoint that was due, reports PREEMPTED and exits 0
// within its grace period; the coordinator re-queues the job as a preemption, a replacement worker
// joins, and the job resumes from a checkpoint past step 0 and succeeds with `restarts` still 0.
// Real dino-coordinator and dino-worker processes on loopback, a tiny synthetic job.
#include <gtest/gtest.h>

#include <string>

#include "tests/e2e/cluster.h"

namespace dino::e2e {
namespace {

using dino::v1::Job;

// Rank 0 (the one that uploads checkpoints) is the worker that leaves, so the test covers the
// upload before leaving and the peer that sees its gang break.
TEST(PreemptionE2E, SigtermedWorkerLeavesAndTheJobResumesWithoutARestart) {
  Cluster cluster("preemption");
  cluster.StartCoordinator();
  cluster.StartWorker(0);
  cluster.StartWorker(1);
  dino::v1::JobSpec spec = TinySpec(2, 30);
  spec.set_max_restarts(0);  // Any failure that counted as a restart would fail the job.
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(spec));
  ASSERT_OK_AND_ASSIGN(
      running,
      cluster.WaitFor(
          job.id(), [](const Job& j) { return !j.latest_checkpoint_id().empty(); }, kJobTimeout));
  ASSERT_EQ(running.attempts_size(), 1) << running.DebugString();
  const std::string rank0 = running.attempts(0).ranks(0).worker_name();
  const int leaving = rank0 == "worker-0" ? 0 : 1;
  ASSERT_EQ(rank0, "worker-" + std::to_string(leaving));

  ASSERT_OK_AND_ASSIGN(exit_code, cluster.StopWorker(leaving, absl::Seconds(60)));
  EXPECT_EQ(exit_code, 0) << cluster.Logs();
  ASSERT_OK_AND_ASSIGN(
      requeued, cluster.WaitFor(
                    job.id(), [](const Job& j) { return j.preemptions() > 0; }, kJobTimeout));
  EXPECT_EQ(requeued.attempts(0).failure_reason(), dino::v1::FAILURE_REASON_PREEMPTED)
      << requeued.DebugString();
  cluster.StartWorker(2);  // The replacement.

  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), kJobTimeout));
  ASSERT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString() << cluster.Logs();
  EXPECT_EQ(done.restarts(), 0) << done.DebugString();
  EXPECT_EQ(done.preemptions(), 1) << done.DebugString();
  ASSERT_EQ(done.attempts_size(), 2) << done.DebugString();
  EXPECT_GT(done.attempts(1).resume_step(), 0) << done.DebugString();
  EXPECT_FALSE(done.attempts(1).resume_checkpoint_id().empty());
  for (const auto& rank : done.attempts(1).ranks()) {
    EXPECT_NE(rank.worker_name(), rank0) << "the worker that left was scheduled again";
  }
}

}  // namespace
}  // namespace dino::e2e
