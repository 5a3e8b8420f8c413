// Process-level metrics shared by the coordinator and the workers.
//
// Thread-safety: safe from any thread. Failure: reading /proc fails with a non-OK Status
// (INTERNAL for an unreadable or malformed file); registration fails as Registry's does.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace dino {
namespace metrics {

// Resident set size of this process in bytes, from /proc/self/statm.
absl::StatusOr<int64_t> ProcessResidentMemoryBytes();

// Registers process_resident_memory_bytes as a gauge read at scrape time. A failed read exports
// NaN rather than a stale value.
absl::Status RegisterProcessMetrics(Registry* registry);

}  // namespace metrics
}  // namespace dino
