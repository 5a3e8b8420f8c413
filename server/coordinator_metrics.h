// CoordinatorMetrics: the coordinator's Prometheus series, as named in deploy/METRICS.md (the gRPC
// series are server/grpc_server_metrics.h).
//
// WithStoreMetrics wraps the Store so that the store's own series need no hooks in the SQLite
// code: every write transaction is timed (dino_sqlite_write_seconds) and the bytes of the
// checkpoints in the store (dino_checkpoint_bytes) follow InsertCheckpoint / DeleteCheckpoint.
//
// Ownership: the families live in the Registry passed to Create (owned by main or the test); this
// struct holds borrowed pointers and shared children. The metered store owns the wrapped one.
// Thread-safety: updates are thread-safe; the metered store is as thread-safe as the wrapped one.
// Failure: Create returns the registry's error for a duplicate or bad name; WithStoreMetrics the
// store's error when listing the checkpoints already stored fails. Store errors pass through.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "server/store.h"

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
  std::shared_ptr<metrics::Histogram> sqlite_write_seconds;
  std::shared_ptr<metrics::Gauge> checkpoint_bytes;

  static absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> Create(metrics::Registry* registry);
};

// `store` with its writes timed into metrics.sqlite_write_seconds on `clock`, and
// metrics.checkpoint_bytes kept equal to the size of every checkpoint row (deleting ones included:
// their files are still on disk).
absl::StatusOr<std::unique_ptr<Store>> WithStoreMetrics(std::unique_ptr<Store> store,
                                                        const CoordinatorMetrics& metrics,
                                                        Clock* clock);

}  // namespace dino::server
