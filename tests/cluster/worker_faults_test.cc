// Quiet worker faults across test hosts: a worker's host drops off the network without a reset,
// and a rank hangs (SIGSTOP) in the middle of a 2-rank job whose Gloo traffic crosses the bridge.
// Each test prints its figures (seconds from the fault to each detection, steps lost).
#include <signal.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "tests/cluster/fault_fixture.h"

namespace dino::cluster {
namespace {

using dino::v1::Job;

bool HasCheckpoint(const Job& j) { return !j.latest_checkpoint_id().empty(); }

// The lines a worker logs when its attempt ends because a peer or the coordinator gave up on it:
// the collective's own failure, or the coordinator's abort.
std::vector<std::string> AttemptEnded(int rank) {
  return {": abort (", "aborting group", absl::StrCat("attempt 1 rank ", rank, ": ")};
}
// The lines a worker logs when it drops attempt 1 because the coordinator ended it: a report
// refused, the coordinator's answer to its registration, its abort, or the next assignment.
const std::vector<std::string> kFenced = {"dropping the attempt", "no longer runs this attempt",
                                          "attempt 1: abort (", "aborting the old one"};

// Rank 0's host (the rendezvous master, the uploader) is cut off for longer than the worker
// timeout. The coordinator declares it dead, the surviving rank stops within its collective
// timeout, and the job resumes from its latest checkpoint on the spare worker; when the host
// comes back its worker rejoins under a new id and its old attempt's reports are refused.
TEST_F(NetworkFaultTest, PartitionedWorkerIsReplacedAndRejoinsAsANewWorker) {
  AddWorkerHosts(3);
  cluster_->StartCoordinator();
  for (int i = 0; i < 3; ++i) cluster_->StartWorker(i);
  dino::v1::JobSpec spec = e2e::TinySpec(2, 12);
  ASSERT_OK_AND_ASSIGN(job, cluster_->Submit(spec));
  ASSERT_OK_AND_ASSIGN(running, cluster_->WaitFor(job.id(), HasCheckpoint, e2e::kJobTimeout));
  const int cut = WorkerOfRank(running, 1, 0);
  const int survivor = WorkerOfRank(running, 1, 1);
  ASSERT_GE(cut, 0);
  ASSERT_GE(survivor, 0);
  ASSERT_OK_AND_ASSIGN(before, WorkerNamed(absl::StrCat("worker-", cut)));

  const absl::Time fault = absl::Now();
  ASSERT_TRUE(net_->Disconnect(worker_hosts_[cut]).ok());
  ASSERT_OK_AND_ASSIGN(at_fault, cluster_->GetJob(job.id()));

  // The coordinator: dead within --worker-timeout (3 s) plus one heartbeat (0.3 s), measured
  // from the moment the host went quiet; the bound adds 2.5 s for a loaded test machine (ctest
  // runs other end-to-end tests beside this one).
  absl::Time dead_at;
  for (;;) {
    ASSERT_OK_AND_ASSIGN(w, WorkerNamed(absl::StrCat("worker-", cut)));
    if (w.state() == dino::v1::WORKER_STATE_DEAD) {
      dead_at = absl::Now();
      break;
    }
    ASSERT_LT(absl::Now() - fault, absl::Seconds(20)) << "never declared dead";
    absl::SleepFor(absl::Milliseconds(50));
  }
  Figure("fault to worker declared dead", absl::ToDoubleSeconds(dead_at - fault), "s");
  EXPECT_LE(dead_at - fault, absl::Seconds(3 + 0.3 + 2.5));

  // The survivor: told to abort when the coordinator declares its peer dead, well within its 10 s
  // collective timeout.
  ASSERT_OK_AND_ASSIGN(ended_at, WaitForWorkerLog(survivor, fault, AttemptEnded(1),
                                                  absl::Seconds(10 + 5)));
  Figure("fault to surviving rank told to abort", absl::ToDoubleSeconds(ended_at - fault), "s");
  EXPECT_LE(ended_at - fault, absl::Seconds(10 + 1));

  // The job resumes from its latest checkpoint on the two workers that are there.
  ASSERT_OK_AND_ASSIGN(resumed, cluster_->WaitFor(
                                    job.id(),
                                    [](const Job& j) {
                                      return j.attempts_size() >= 2 &&
                                             j.state() == dino::v1::JOB_STATE_RUNNING;
                                    },
                                    e2e::kJobTimeout));
  const absl::Time resumed_at = absl::Now();
  Figure("fault to job running again", absl::ToDoubleSeconds(resumed_at - fault), "s");
  // The survivor's Gloo collective cannot be interrupted: it returns at its 10 s timeout, and the
  // new attempt waits for the survivor to drop the old one. Bounded, never a hang.
  EXPECT_LE(resumed_at - fault, absl::Seconds(3 + 0.3 + 10 + 3));
  const auto& second = resumed.attempts(1);
  EXPECT_EQ(resumed.attempts(0).failure_reason(), dino::v1::FAILURE_REASON_WORKER_LOST)
      << resumed.DebugString();
  EXPECT_FALSE(second.resume_checkpoint_id().empty()) << resumed.DebugString();
  EXPECT_GT(second.resume_step(), 0);
  for (const auto& rank : second.ranks()) {
    EXPECT_NE(rank.worker_name(), absl::StrCat("worker-", cut)) << resumed.DebugString();
  }
  // Progress steps count from 0, checkpoint steps are steps done.
  Figure("steps redone", at_fault.latest_stats().step() + 1 - second.resume_step(), "steps");

  // The host comes back: its worker is a new worker (the dead id is never revived) and the word
  // of its old attempt (progress, the result, a late checkpoint) is refused.
  ASSERT_TRUE(net_->Reconnect(worker_hosts_[cut]).ok());
  const absl::Time back = absl::Now();
  absl::StatusOr<dino::v1::WorkerInfo> rejoined;
  for (;;) {
    rejoined = WorkerNamed(absl::StrCat("worker-", cut));
    ASSERT_TRUE(rejoined.ok()) << rejoined.status();
    if (rejoined->state() != dino::v1::WORKER_STATE_DEAD) break;
    ASSERT_LT(absl::Now() - back, absl::Seconds(30)) << "the reconnected worker never rejoined";
    absl::SleepFor(absl::Milliseconds(100));
  }
  Figure("reconnect to rejoined", absl::ToDoubleSeconds(absl::Now() - back), "s");
  EXPECT_NE(rejoined->id(), before.id());
  ASSERT_OK_AND_ASSIGN(fenced_at, WaitForWorkerLog(cut, fault, kFenced, absl::Seconds(30)));
  (void)fenced_at;

  ASSERT_OK_AND_ASSIGN(done, cluster_->WaitTerminal(job.id(), e2e::kJobTimeout));
  EXPECT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  ASSERT_OK_AND_ASSIGN(checkpoints, cluster_->Checkpoints(job.id()));
  for (const auto& c : checkpoints) {
    if (c.attempt() == 1) {
      EXPECT_LE(c.step(), at_fault.latest_stats().step() + spec.checkpoint().every_steps())
          << "a checkpoint of the ended attempt was committed after the fault: " << c.DebugString();
    }
  }
}

// One rank is stopped (SIGSTOP) for longer than the collective timeout but less than the worker
// timeout, so the coordinator still counts it alive: the other rank's collective must give up on
// its own. When the stopped rank wakes it is fenced (its reports refused, its attempt dropped),
// the job resumes from its checkpoint on both workers, and no process is left blocked.
TEST_F(NetworkFaultTest, HungRankIsAbandonedByItsPeerAndFencedWhenItWakes) {
  AddWorkerHosts(2);
  cluster_->worker_timeout = "30s";
  cluster_->collective_timeout_seconds = "4";
  cluster_->StartCoordinator();
  cluster_->StartWorker(0);
  cluster_->StartWorker(1);
  ASSERT_OK_AND_ASSIGN(job, cluster_->Submit(e2e::TinySpec(2, 12)));
  ASSERT_OK_AND_ASSIGN(running, cluster_->WaitFor(job.id(), HasCheckpoint, e2e::kJobTimeout));
  // Rank 0: the rendezvous master and the one that reports, so waking it sends stale reports.
  const int hung = WorkerOfRank(running, 1, 0);
  const int peer = WorkerOfRank(running, 1, 1);
  ASSERT_GE(hung, 0);
  ASSERT_GE(peer, 0);

  const absl::Time stop = absl::Now();
  cluster_->worker_process(hung)->Signal(SIGSTOP);
  ASSERT_OK_AND_ASSIGN(peer_ended, WaitForWorkerLog(peer, stop, AttemptEnded(1), absl::Seconds(15)));
  Figure("stop to peer's collective abandoned", absl::ToDoubleSeconds(peer_ended - stop), "s");
  EXPECT_LE(peer_ended - stop, absl::Seconds(4 + 2));
  ASSERT_OK_AND_ASSIGN(failed, cluster_->WaitFor(
                                   job.id(),
                                   [](const Job& j) {
                                     return j.attempts(0).state() ==
                                            dino::v1::ATTEMPT_STATE_FAILED;
                                   },
                                   absl::Seconds(20)));
  EXPECT_NE(failed.attempts(0).failure_reason(), dino::v1::FAILURE_REASON_WORKER_LOST)
      << "the coordinator, not the peer, ended the attempt: " << failed.DebugString();

  // Longer than the collective timeout, then wake it.
  absl::SleepFor(stop + absl::Seconds(8) - absl::Now());
  const absl::Time wake = absl::Now();
  cluster_->worker_process(hung)->Signal(SIGCONT);
  ASSERT_OK_AND_ASSIGN(fenced, WaitForWorkerLog(hung, wake, kFenced, absl::Seconds(20)));
  Figure("wake to stopped rank fenced", absl::ToDoubleSeconds(fenced - wake), "s");

  ASSERT_OK_AND_ASSIGN(done, cluster_->WaitTerminal(job.id(), e2e::kJobTimeout));
  EXPECT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  ASSERT_GE(done.attempts_size(), 2);
  EXPECT_GT(done.attempts(1).resume_step(), 0) << done.DebugString();
  Figure("steps redone", failed.latest_stats().step() + 1 - done.attempts(1).resume_step(), "steps");
  // Nothing is left blocked: each worker still leaves promptly when asked.
  for (int i : {0, 1}) {
    ASSERT_OK_AND_ASSIGN(code, cluster_->StopWorker(i, absl::Seconds(20)));
    EXPECT_EQ(code, 0) << "worker-" << i;
  }
}

}  // namespace
}  // namespace dino::cluster
