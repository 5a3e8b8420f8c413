// Backoff: capped exponential backoff with jitter for reconnecting and retrying RPCs.
//
//   Backoff backoff({absl::Milliseconds(200), absl::Seconds(10)});
//   while (!TryConnect()) clock->SleepFor(backoff.Next());
//   backoff.Reset();  // after a success
//
// Thread-safety: a value type; one owner. Failure: none.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace dino {

struct BackoffOptions {
  absl::Duration initial = absl::Milliseconds(200);
  absl::Duration max = absl::Seconds(10);
  double multiplier = 2.0;
  double jitter = 0.2;  // Each delay is scaled by a uniform factor in [1 - jitter, 1 + jitter].
};

class Backoff {
 public:
  explicit Backoff(BackoffOptions options = {}, uint64_t seed = std::random_device{}())
      : options_(options), next_(options.initial), rng_(seed) {}

  // The delay before the next try; grows by `multiplier` up to `max`.
  absl::Duration Next() {
    const absl::Duration base = next_;
    next_ = std::min(options_.max, next_ * options_.multiplier);
    std::uniform_real_distribution<double> u(1.0 - options_.jitter, 1.0 + options_.jitter);
    return std::min(options_.max, base * u(rng_));
  }
  void Reset() { next_ = options_.initial; }

 private:
  BackoffOptions options_;
  absl::Duration next_;
  std::mt19937_64 rng_;
};

}  // namespace dino
