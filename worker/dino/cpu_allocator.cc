#include "worker/dino/cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace dino {
namespace {

constexpr size_t kCpuBlockAlignment = 64;

std::atomic<CachingCpuAllocator*> g_installed_cpu_allocator{nullptr};

size_t DefaultMaxCachedCpuBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  const size_t eight_gib = size_t{8} << 30;
  if (pages <= 0 || page_size <= 0) return size_t{1} << 30;
  return std::min(eight_gib, static_cast<size_t>(pages) * static_cast<size_t>(page_size) / 4);
}

// The large blocks in use, of every CachingCpuAllocator: data -> (owner, size).
struct LiveBlocks {
  absl::Mutex mu;
  std::unordered_map<void*, std::pair<const CachingCpuAllocator*, size_t>> blocks
      ABSL_GUARDED_BY(mu);
};

LiveBlocks& Live() {
  static auto* live = new LiveBlocks;  // Never destroyed: tensors die during static destruction.
  return *live;
}

}  // namespace

CachingCpuAllocator::CachingCpuAllocator(c10::Allocator* fallback, size_t max_cached_bytes)
    : fallback_(fallback), max_cached_bytes_(max_cached_bytes) {}

CachingCpuAllocator::~CachingCpuAllocator() { Release(); }

c10::DataPtr CachingCpuAllocator::Allocate(size_t n) const {
  if (n < kMinCachedBytes) return fallback_->allocate(n);
  void* data = nullptr;
  size_t size = n;
  {
    absl::MutexLock lock(&mu_);
    auto it = free_.lower_bound(n);
    if (it != free_.end() && it->first <= n + n / 8) {
      data = it->second;
      size = it->first;
      stats_.cached_bytes -= size;
      free_.erase(it);
      ++stats_.hits;
    } else {
      ++stats_.misses;
    }
  }
  if (data == nullptr && posix_memalign(&data, kCpuBlockAlignment, n) != 0) {
    {
      absl::MutexLock lock(&mu_);
      ReleaseLocked();
    }
    data = nullptr;
    TORCH_CHECK_WITH(OutOfMemoryError, posix_memalign(&data, kCpuBlockAlignment, n) == 0,
                     "CachingCpuAllocator: can't allocate ", n, " bytes: out of memory");
  }
  {
    LiveBlocks& live = Live();
    absl::MutexLock lock(&live.mu);
    live.blocks[data] = {this, size};
  }
  return {data, data, &CachingCpuAllocator::Delete, c10::Device(c10::DeviceType::CPU)};
}

void CachingCpuAllocator::Delete(void* data) {
  if (data == nullptr) return;
  const CachingCpuAllocator* owner = nullptr;
  size_t size = 0;
  {
    LiveBlocks& live = Live();
    absl::MutexLock lock(&live.mu);
    auto it = live.blocks.find(data);
    if (it != live.blocks.end()) {
      std::tie(owner, size) = it->second;
      live.blocks.erase(it);
    }
  }
  if (owner != nullptr) {
    owner->Recycle(data, size);
    return;
  }
  c10::DeleterFnPtr fallback = c10::GetDefaultCPUAllocator()->raw_deleter();
  TORCH_INTERNAL_ASSERT(fallback != nullptr, "CachingCpuAllocator: no deleter for ", data);
  fallback(data);
}

void CachingCpuAllocator::Recycle(void* data, size_t size) const {
  {
    absl::MutexLock lock(&mu_);
    if (stats_.cached_bytes + size <= max_cached_bytes_) {
      free_.emplace(size, data);
      stats_.cached_bytes += size;
      return;
    }
  }
  std::free(data);
}

void CachingCpuAllocator::Release() {
  absl::MutexLock lock(&mu_);
  ReleaseLocked();
}

void CachingCpuAllocator::ReleaseLocked() const {
  for (auto& [size, data] : free_) std::free(data);
  free_.clear();
  stats_.cached_bytes = 0;
}

CachingCpuAllocator::Stats CachingCpuAllocator::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

CachingCpuAllocator* InstallCachingCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Never destroyed: tensors may be freed during static destruction.
    auto* allocator = new CachingCpuAllocator(c10::GetCPUAllocator(), DefaultMaxCachedCpuBytes());
    c10::SetCPUAllocator(allocator, /*priority=*/1);
    g_installed_cpu_allocator.store(allocator);
  });
  return g_installed_cpu_allocator.load();
}

CachingCpuAllocator* InstalledCachingCpuAllocator() { return g_installed_cpu_allocator.load(); }

}  // namespace dino
