#include "common/metrics_process.h"

#include <unistd.h>

#include <fstream>
#include <limits>

namespace dino {
namespace metrics {

absl::StatusOr<int64_t> ProcessResidentMemoryBytes() {
  // statm: size resident shared text lib data dt, in pages.
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0;
  int64_t resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) {
    return absl::InternalError("cannot read /proc/self/statm");
  }
  const long page_size = sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return absl::InternalError("sysconf(_SC_PAGESIZE) failed");
  return resident_pages * static_cast<int64_t>(page_size);
}

absl::Status RegisterProcessMetrics(Registry* registry) {
  return registry->AddCallbackGauge(
      "process_resident_memory_bytes", "Resident memory size in bytes.", [] {
        absl::StatusOr<int64_t> rss = ProcessResidentMemoryBytes();
        return rss.ok() ? static_cast<double>(*rss) : std::numeric_limits<double>::quiet_NaN();
      });
}

}  // namespace metrics
}  // namespace dino
