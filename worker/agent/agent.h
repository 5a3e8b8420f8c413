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
// Ownership: owns the link and the current runner. Thread-safety: Run() blocks on the calling
// thread; Shutdown() may be called from any thread (e.g. a signal-watching thread).
// Failure: none surfaces: connection problems are logged and retried until Shutdown().
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "worker/agent/attempt_runner.h"
#include "worker/agent/coordinator_link.h"

namespace grpc {
class ClientContext;
}

namespace dino::agent {

struct AgentOptions {
  std::string coordinator = "localhost:50051";
  std::string name;            // Default hostname:rendezvous_port.
  std::string advertise_host;  // Host peers use to reach this worker's store; default hostname.
  int64_t memory_bytes = 0;    // Reported to the scheduler; 0 = physical memory.
  LinkSecurity security;       // TLS credentials and bearer token for the coordinator.
  RunnerOptions runner;
};

class Agent {
 public:
  Agent(AgentOptions options, Clock* clock);
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
  Clock* const clock_;
  CoordinatorLink link_;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool leaving_ ABSL_GUARDED_BY(mu_) = false;
  std::string leave_reason_ ABSL_GUARDED_BY(mu_);
  bool stream_done_ ABSL_GUARDED_BY(mu_) = true;  // The current stream's reads ended.
  bool registered_ = false;                       // Run() thread only.
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(2);
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::unique_ptr<AttemptRunner> runner_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dino::agent
