#include "worker/agent/runner_reaper.h"

#include <utility>

namespace dino::agent {

RunnerReaper::RunnerReaper() : thread_([this] { Loop(); }) {}

RunnerReaper::~RunnerReaper() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void RunnerReaper::Reap(std::unique_ptr<AttemptRunner> runner) {
  if (runner == nullptr) return;
  absl::MutexLock lock(&mu_);
  pending_.push_back(std::move(runner));
}

void RunnerReaper::WaitIdle() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_.empty() && destroying_ == 0;
  };
  mu_.Await(absl::Condition(&idle));
}

void RunnerReaper::Loop() {
  while (true) {
    std::vector<std::unique_ptr<AttemptRunner>> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !pending_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (pending_.empty()) return;  // Stopping with nothing left.
      batch.swap(pending_);
      destroying_ = static_cast<int>(batch.size());
    }
    batch.clear();  // Aborts (a no-op for finished runners) and joins, outside the lock.
    absl::MutexLock lock(&mu_);
    destroying_ = 0;
  }
}

}  // namespace dino::agent
