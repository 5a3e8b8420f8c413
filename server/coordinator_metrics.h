// CoordinatorMetrics: the coordinator's Prometheus series, as named in deploy/METRICS.md.
//
// Ownership: the families live in the Registry passed to Create (owned by main or the test); this
// struct holds borrowed pointers and shared children. Thread-safety: updates are thread-safe.
// Failure: Create returns the registry's error for a duplicate or bad name.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace dino::server {

struct CoordinatorMetrics {
  metrics::Family<metrics::Gauge>* jobs = nullptr;     // {state}
  metrics::Family<metrics::Gauge>* workers = nullptr;  // {state}
  std::shared_ptr<metrics::Counter> submissions;
  std::shared_ptr<metrics::Counter> restarts;
  std::shared_ptr<metrics::Counter> cancellations;
  std::shared_ptr<metrics::Gauge> queue_length;
  std::shared_ptr<metrics::Histogram> scheduling_latency;
  std::shared_ptr<metrics::Counter> heartbeats;
  std::shared_ptr<metrics::Counter> checkpoints_stored;
  std::shared_ptr<metrics::Counter> collapse_warnings;

  static absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> Create(metrics::Registry* registry);
};

}  // namespace dino::server
