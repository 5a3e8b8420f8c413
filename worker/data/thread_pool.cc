#include "worker/data/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>

namespace dino::data {

ThreadPool::ThreadPool(int num_threads) {
  const int n = std::max(1, num_threads);
  threads_.reserve(n);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { WorkLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) t.join();
}

void ThreadPool::Schedule(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

void ThreadPool::WorkLoop() {
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPool* p)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->stopping_ || !p->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping and drained
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  // Work is claimed through a shared counter so the caller helps instead of idling.
  struct Shared {
    std::atomic<int64_t> next{0};
    absl::Mutex mu;
    int64_t done ABSL_GUARDED_BY(mu) = 0;
    int64_t total = 0;
  };
  auto shared = std::make_shared<Shared>();
  shared->total = n;
  auto run = [shared, n, &fn] {
    int64_t finished = 0;
    for (int64_t i = shared->next.fetch_add(1); i < n; i = shared->next.fetch_add(1)) {
      fn(i);
      ++finished;
    }
    absl::MutexLock lock(&shared->mu);
    shared->done += finished;
  };
  const int64_t helpers = std::min<int64_t>(n - 1, num_threads());
  for (int64_t h = 0; h < helpers; ++h) Schedule(run);
  run();
  Shared* s = shared.get();
  absl::MutexLock lock(&s->mu);
  s->mu.Await(absl::Condition(
      +[](Shared* sh) ABSL_NO_THREAD_SAFETY_ANALYSIS { return sh->done == sh->total; }, s));
}

}  // namespace dino::data
