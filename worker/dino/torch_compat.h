// LibTorch 1.13 (Debian, CPU) vs 2.x (CUDA users): every API difference lives in this header.
//
// Callers use the dino::compat functions and never test TORCH_VERSION_* themselves.
// - ScaledDotProductAttention: the fused kernel on 2.x, the explicit softmax(QK^T/sqrt(d))V
//   on 1.13.
// - AutocastGuard: bf16 autocast on CUDA; a no-op on CPU or when disabled. The autocast entry
//   points were renamed in 2.4 (device-type arguments).
// - CpuAllocatorBase: a c10::Allocator whose allocate() is const on 1.13 (and 2.0-2.2) and
//   non-const on 2.3+, where copy_data also became pure virtual. It declares both forms, so the
//   one the installed LibTorch declares virtual is the override, on every version.
// - c10d differences are confined to worker/dist/ and use kTorchMajor/kTorchMinor from here.
//   C10dBackend names the class that ProcessGroupGloo/ProcessGroupNCCL derive from:
//   c10d::ProcessGroup on 1.13, c10d::Backend on 2.x (the constructors and Options::create
//   signatures that worker/dist uses are the same on both). Forward-declared so the core need not
//   see c10d. DINO_C10D_BACKEND_SHUTDOWN: the backend base class has virtual shutdown()/abort(),
//   which ProcessGroupNCCL expects before it is destroyed (checked on 2.11; set from 2.6 on).
//
// Thread-safety: autocast state is thread-local in LibTorch; AutocastGuard affects only the
// calling thread. Failure: these functions throw c10::Error like the LibTorch calls they wrap;
// callers are inside a TorchCall seam.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/Allocator.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstring>

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace dino::compat {

inline constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
inline constexpr int kTorchMinor = TORCH_VERSION_MINOR;

#if TORCH_VERSION_MAJOR >= 2
#define DINO_TORCH2 1
#else
#define DINO_TORCH2 0
#endif

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
#define DINO_C10D_BACKEND_SHUTDOWN 1
#else
#define DINO_C10D_BACKEND_SHUTDOWN 0
#endif

#if DINO_TORCH2
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

// q, k, v: [B, heads, N, head_dim]. Returns [B, heads, N, head_dim].
inline torch::Tensor ScaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v) {
#if DINO_TORCH2
  return at::scaled_dot_product_attention(q, k, v);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto attn = torch::matmul(q * scale, k.transpose(-2, -1)).softmax(-1);
  return torch::matmul(attn, v);
#endif
}

// Base of dino's c10::Allocator implementations: derive and implement Allocate().
class CpuAllocatorBase : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const { return Allocate(n); }  // 1.13 to 2.2
  c10::DataPtr allocate(size_t n) { return Allocate(n); }        // 2.3+
  void copy_data(void* dest, const void* src, size_t count) const {
    if (count > 0) std::memcpy(dest, src, count);
  }

 protected:
  virtual c10::DataPtr Allocate(size_t n) const = 0;
};

// Enables bf16 autocast for CUDA in this scope when `enabled` and `device` is CUDA.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, bool enabled) : active_(enabled && device.is_cuda()) {
    if (!active_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
#else
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};

}  // namespace dino::compat
