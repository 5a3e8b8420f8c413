#include "worker/data/augment_pool.h"

#include <cstdlib>
#include <functional>

namespace dino::data {
namespace {

constexpr size_t kAlignment = 64;

}  // namespace

std::shared_ptr<BufferPool> BufferPool::Create(size_t max_idle_bytes) {
  return std::shared_ptr<BufferPool>(new BufferPool(max_idle_bytes));
}

torch::Tensor BufferPool::Empty(at::IntArrayRef sizes) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes =
      (static_cast<size_t>(numel) * sizeof(float) + kAlignment - 1) / kAlignment * kAlignment;
  void* data = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = idle_.find(bytes);
    if (it != idle_.end()) {
      data = it->second;
      idle_.erase(it);
      idle_bytes_ -= bytes;
    }
  }
  if (data == nullptr) data = std::aligned_alloc(kAlignment, bytes == 0 ? kAlignment : bytes);
  TORCH_CHECK(data != nullptr, "BufferPool: out of memory allocating ", bytes, " bytes");
  std::shared_ptr<BufferPool> self = shared_from_this();
  return torch::from_blob(
      data, sizes, [self, bytes](void* p) { self->Release(p, bytes); },
      torch::TensorOptions().dtype(torch::kFloat32));
}

void BufferPool::Release(void* data, size_t bytes) {
  {
    absl::MutexLock lock(&mu_);
    if (idle_bytes_ + bytes <= max_idle_bytes_) {
      idle_.emplace(bytes, data);
      idle_bytes_ += bytes;
      return;
    }
  }
  std::free(data);
}

size_t BufferPool::idle_bytes() const {
  absl::MutexLock lock(&mu_);
  return idle_bytes_;
}

BufferPool::~BufferPool() {
  absl::MutexLock lock(&mu_);
  for (auto& [bytes, data] : idle_) std::free(data);
}

}  // namespace dino::data
