#include "worker/dino/micro_batch.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

namespace dino {

MicroBatchRunner::MicroBatchRunner(int parts, int threads_per_part, int restore_threads,
                                   bool flush_denormal) {
  threads_.reserve(parts);
  for (int i = 0; i < parts; ++i) {
    threads_.emplace_back([this, i, threads_per_part, flush_denormal] {
      WorkLoop(i, threads_per_part, flush_denormal);
    });
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return ready_ == parts; });
  lock.unlock();
  // The workers' at::set_num_threads also moved the default for threads started later (the
  // loader's, the evaluation's); put it back. The calling thread's own setting is unchanged.
  at::set_num_threads(restore_threads);
}

MicroBatchRunner::~MicroBatchRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void MicroBatchRunner::Run(const std::function<void(int)>& fn) {
  std::unique_lock<std::mutex> lock(mu_);
  job_ = &fn;
  pending_ = parts();
  ++generation_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

void MicroBatchRunner::WorkLoop(int index, int threads_per_part, bool flush_denormal) {
  if (flush_denormal) at::globalContext().setFlushDenormal(true);
  {
    std::unique_lock<std::mutex> lock(mu_);
    // get_num_threads first: it makes LibTorch initialise this thread's count from the process
    // default now, so that its lazy initialisation cannot overwrite ours at the first kernel.
    (void)at::get_num_threads();
    at::set_num_threads(threads_per_part);
    ++ready_;
  }
  cv_.notify_all();
  int64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(index);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --pending_;
    }
    cv_.notify_all();
  }
}

}  // namespace dino
