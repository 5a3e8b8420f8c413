// ThreadPool: a fixed set of threads running queued closures, used to decode images in parallel.
//
// Written here because Abseil 20220623 keeps its pool internal and LibTorch's intra-op pool must
// not block on file I/O. Ownership: the pool owns its threads; the destructor drains the queue and
// joins them. Thread-safety: Schedule and ParallelFor may be called from any thread, including
// concurrently. Failure: none; closures must not throw (exceptions are not caught).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dino::data {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(threads_.size()); }
  void Schedule(std::function<void()> fn);
  // Runs fn(0..n-1) on the pool and the calling thread; returns when all calls have finished.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkLoop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace dino::data
