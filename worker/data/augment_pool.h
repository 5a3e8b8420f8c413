// BufferPool: recycles the memory of the float tensors that MultiCropCpu hands out. A tensor from
// Empty() returns its buffer to the pool when its last reference goes (the storage's deleter), and
// the next Empty() of the same byte size takes it back, so that steady-state batches write into
// memory that is already mapped. Fresh multi-megabyte buffers come from mmap and are
// page-faulted and zeroed by the kernel on first touch: in the ImageNet-like profile (66 MB of
// views per batch of 32) that was about half of the CPU path's time.
//
// Ownership: created as a std::shared_ptr (Create); every tensor handed out holds a reference, so
// the pool outlives its buffers. Idle buffers are kept up to `max_idle_bytes` in all; beyond that
// a returned buffer is freed. Thread-safety: Empty() and the deleters may run on any threads at
// once. Failure: Empty() throws c10::Error (std::bad_alloc's LibTorch form) when memory runs out;
// callers are inside a TorchCall seam.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dino::data {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  static std::shared_ptr<BufferPool> Create(size_t max_idle_bytes);

  // An uninitialised contiguous float32 CPU tensor of `sizes`, backed by a recycled buffer when
  // one of that byte size is idle.
  torch::Tensor Empty(at::IntArrayRef sizes);

  // Bytes of the buffers waiting to be reused (for tests).
  size_t idle_bytes() const;

  ~BufferPool();

 private:
  explicit BufferPool(size_t max_idle_bytes) : max_idle_bytes_(max_idle_bytes) {}
  void Release(void* data, size_t bytes);

  const size_t max_idle_bytes_;
  mutable absl::Mutex mu_;
  std::multimap<size_t, void*> idle_ ABSL_GUARDED_BY(mu_);  // byte size → buffer
  size_t idle_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dino::data
