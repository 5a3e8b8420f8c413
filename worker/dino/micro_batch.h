// MicroBatchRunner: runs the parts of a split CPU batch concurrently, one part per thread.
//
// On a CPU, LibTorch's intra-op parallelism keeps the cores busy only inside large kernels: the
// many small ops of a ViT step (layer norms, softmaxes, the autograd bookkeeping between them)
// run on one thread while the others wait. The Trainer therefore splits a CPU batch into parts
// and runs each part's forward and backward on its own thread, with `threads_per_part` intra-op
// threads each (trainer.h says when).
//
// Each thread sets its intra-op thread count once when it starts (under OpenMP,
// at::set_num_threads sets the calling thread's count), so a part's kernels never oversubscribe the
// cores. Since that call also moves LibTorch's process-wide default for threads started later, the
// constructor restores the default to `restore_threads` once every worker has set its own.
//
// Ownership: owns its threads; the destructor joins them. Thread-safety: Run is called from one
// thread at a time (the training thread). Failure: none; `fn` must not throw (the Trainer wraps
// each part in its own try/catch and reports through Status).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dino {

class MicroBatchRunner {
 public:
  // flush_denormal: the threads compute with denormal floats flushed to zero, as the CPU
  // training thread does (trainer.cc).
  MicroBatchRunner(int parts, int threads_per_part, int restore_threads, bool flush_denormal);
  ~MicroBatchRunner();
  MicroBatchRunner(const MicroBatchRunner&) = delete;
  MicroBatchRunner& operator=(const MicroBatchRunner&) = delete;

  int parts() const { return static_cast<int>(threads_.size()); }
  // Calls fn(0) .. fn(parts() - 1), each on its own worker thread, and returns when all are done.
  void Run(const std::function<void(int)>& fn);

 private:
  void WorkLoop(int index, int threads_per_part, bool flush_denormal);

  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int)>* job_ = nullptr;  // guarded by mu_
  int64_t generation_ = 0;                         // guarded by mu_; bumped by each Run
  int pending_ = 0;                                // guarded by mu_; parts still running
  int ready_ = 0;                                  // guarded by mu_; workers that set threads
  bool stopping_ = false;                          // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace dino
