// Agent: the dino-worker process's control loop. It registers with the coordinator, keeps the
// Connect stream open with heartbeats, runs the assignments that come down it (one at a time, on
// an AttemptRunner) and obeys cancels and aborts. When the coordinator goes away it reconnects
// with capped exponential backoff, re-registering (with its previous id and its running attempt)
// when the coordinator no longer knows it; a run in progress keeps training meanwhile.
//
// Leave() is the graceful exit (SIGTERM): the agent tells the coordinator it is leaving (so
// nothing more is scheduled on it), lets the current attempt stop at its next step boundary
// (rank 0 uploads the checkpoint that was due and reports PREEMPTED), then closes its stream and
// Run() returns. Shutdown() is the immediate exit: the attempt is aborted.
//
// Time is the injected Clock's: heartbeats are due and reconnects back off on it (tests use a
// SimulatedClock). The stream's threads only poll real time briefly to notice state changes.
//
// A runner that finished or was aborted is destroyed on a RunnerReaper's thread, never on the
// heartbeat thread: the abort has cancelled its calls in flight, but its threads still wind down.
//
// Ownership: borrows the link, the file system and the clock; owns the current runner.
// Thread-safety: Run() blocks on the calling thread; Shutdown() and Leave() may be called from
// any thread (e.g. a signal-watching thread).
// Failure: none surfaces: connection problems are logged and retried until Shutdown().
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "worker/agent/attempt_runner.h"
#include "worker/agent/runner_reaper.h"
#include "worker/agent/worker_link.h"

namespace dino::agent {

struct AgentOptions {
  std::string coordinator = "localhost:50051";
  std::string name;            // Default hostname:rendezvous_port.
  std::string advertise_host;  // Host peers use to reach this worker's store; default hostname.
  int64_t memory_bytes = 0;    // Reported to the scheduler; 0 = physical memory.
  RunnerOptions runner;
};

class Agent {
 public:
  Agent(AgentOptions options, WorkerLink* link, FileSystem* fs, Clock* clock);
  ~Agent();

  void Run();
  void Shutdown();
  void Leave(const std::string& reason);

  std::string worker_id() const;

 private:
  bool RegisterOnce();
  void ServeStream();
  void Dispatch(const dino::v1::CoordinatorMessage& message);
  void ReapFinishedRunner();
  std::optional<dino::v1::RunningAttempt> Running() const;

  const AgentOptions options_;
  WorkerLink* const link_;
  FileSystem* const fs_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool leaving_ ABSL_GUARDED_BY(mu_) = false;
  std::string leave_reason_ ABSL_GUARDED_BY(mu_);
  bool stream_done_ ABSL_GUARDED_BY(mu_) = true;  // The current stream's reads ended.
  bool registered_ = false;                       // Run() thread only.
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(2);
  ConnectStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // While ServeStream runs.
  std::unique_ptr<AttemptRunner> runner_ ABSL_GUARDED_BY(mu_);
  RunnerReaper reaper_;  // Declared last: destroyed (and joined) first.
};

}  // namespace dino::agent
