// RunnerReaper: destroys finished and aborted AttemptRunners on its own thread. Destroying a
// runner joins its thread and its reporter's; that must never happen on the Agent's heartbeat
// thread, which would stop heartbeating (and the coordinator would declare a healthy worker dead)
// while an aborted attempt's last call winds down.
//
// Ownership: takes the runners handed to it. Thread-safety: every method may be called from any
// thread. Destruction joins every runner still pending. Failure: none.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "worker/agent/attempt_runner.h"

namespace dino::agent {

class RunnerReaper {
 public:
  RunnerReaper();
  ~RunnerReaper();
  RunnerReaper(const RunnerReaper&) = delete;
  RunnerReaper& operator=(const RunnerReaper&) = delete;

  // Destroys `runner` soon, on the reaper's thread (null is ignored).
  void Reap(std::unique_ptr<AttemptRunner> runner);
  // Blocks until every runner handed over so far is destroyed (a new attempt may then take the
  // rendezvous port an old one held).
  void WaitIdle();

 private:
  void Loop();

  absl::Mutex mu_;
  std::vector<std::unique_ptr<AttemptRunner>> pending_ ABSL_GUARDED_BY(mu_);
  int destroying_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dino::agent
