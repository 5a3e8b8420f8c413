// Clock: the injected source of time for everything that waits, times out or timestamps.
//
// Production code takes a `Clock*` (owned by main) instead of calling absl::Now(), so liveness,
// retries and restarts are tested with SimulatedClock and never sleep.
//
// Thread-safety: both implementations are safe to call from any thread.
// Failure: SleepFor/WaitUntil never fail; they may return early only as documented below.
#pragma once

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dino {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Blocks the calling thread until Now() >= deadline.
  virtual void SleepUntil(absl::Time deadline) = 0;
  void SleepFor(absl::Duration d) { SleepUntil(Now() + d); }
};

// Wall-clock time. A process-wide instance is returned by RealClock::Get().
class RealClock final : public Clock {
 public:
  static RealClock* Get();
  absl::Time Now() const override;
  void SleepUntil(absl::Time deadline) override;
};

// Time that moves only when a test calls Advance(). Sleepers wake when the simulated time reaches
// their deadline. Starts at the Unix epoch + 1e9 s unless given a start time.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1'000'000'000));
  absl::Time Now() const override;
  void SleepUntil(absl::Time deadline) override;
  // Moves time forward by `d` (must be >= 0) and wakes sleepers whose deadline has passed.
  void Advance(absl::Duration d);
  void SetTime(absl::Time t);  // t must not be earlier than Now().
  // Number of threads currently blocked in SleepUntil; lets tests wait for a sleeper to park.
  int sleepers() const;

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  int sleepers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dino
