// CachingCpuAllocator: a LibTorch CPU allocator that keeps freed large blocks and hands them out
// again, so a training step does not page-fault its activations in afresh every step.
//
// Why: glibc serves a block above its mmap threshold (at most 32 MiB, and any block a thread's
// non-main arena cannot hold) with a fresh mmap and unmaps it on free. A training step allocates
// the same large activations, logits and gradients every step, so each step faulted all of them in
// again: with K = 65536, bench_train_step's tiny28/cpu step spent about half its time in the
// kernel's page-fault path on this 2-core VM. PyTorch's default CPU allocator does the same.
//
// Contract:
// - Requests of at least kMinCachedBytes get a 64-byte aligned block (c10's alignment). When the
//   tensor is freed the block goes back to this cache, not to the system. Smaller requests go to
//   the allocator given as `fallback` (glibc's per-thread arenas reuse small blocks well).
// - A request reuses a cached block of the same size, or of at most 1/8 more; otherwise it
//   allocates a new block.
// - At most `max_cached_bytes` of free blocks are kept; a freed block that would exceed it is
//   returned to the system at once.
// - When the system refuses a block, the cache is emptied and the request retried once; if that
//   fails too it throws c10::OutOfMemoryError ("... out of memory"), which TorchCall maps to
//   RESOURCE_EXHAUSTED, as LibTorch's own allocator does.
// - Release() returns every cached block to the system; the worker calls it when a run ends, so
//   an idle worker holds no cache.
// Thread-safe: any thread may allocate and free. An allocator must outlive the tensors it
// allocated; the process-wide one from InstallCachingCpuAllocator() is never destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "worker/dino/torch_compat.h"

namespace dino {

class CachingCpuAllocator final : public compat::CpuAllocatorBase {
 public:
  static constexpr size_t kMinCachedBytes = size_t{1} << 20;

  struct Stats {
    int64_t hits = 0;         // requests served from the cache
    int64_t misses = 0;       // cacheable requests that allocated a new block
    size_t cached_bytes = 0;  // free blocks held now
  };

  CachingCpuAllocator(c10::Allocator* fallback, size_t max_cached_bytes);
  ~CachingCpuAllocator() override;
  CachingCpuAllocator(const CachingCpuAllocator&) = delete;
  CachingCpuAllocator& operator=(const CachingCpuAllocator&) = delete;

  // Frees every cached block.
  void Release();
  Stats stats() const;
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::Delete; }

 protected:
  c10::DataPtr Allocate(size_t n) const override;

 private:
  // The DataPtr's context is the data pointer itself, as LibTorch's raw_allocate/raw_deallocate
  // (used by oneDNN) require. Delete() looks the pointer up among the live blocks of every
  // CachingCpuAllocator; a pointer that is not one of them (a small block, or one allocated before
  // this allocator was installed) goes to LibTorch's default CPU deleter.
  static void Delete(void* data);
  void Recycle(void* data, size_t size) const;
  void ReleaseLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  c10::Allocator* const fallback_;
  const size_t max_cached_bytes_;
  mutable absl::Mutex mu_;
  mutable std::multimap<size_t, void*> free_ ABSL_GUARDED_BY(mu_);  // size -> data
  mutable Stats stats_ ABSL_GUARDED_BY(mu_);
};

// Makes one process-wide CachingCpuAllocator LibTorch's CPU allocator (the first call installs it;
// later calls return the same one). It caches at most min(8 GiB, physical memory / 4).
CachingCpuAllocator* InstallCachingCpuAllocator();

// The installed allocator, or nullptr before InstallCachingCpuAllocator().
CachingCpuAllocator* InstalledCachingCpuAllocator();

}  // namespace dino
