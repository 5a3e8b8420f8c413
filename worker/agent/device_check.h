// The check of dino-worker's --device flag, made at startup before the worker registers.
//
// A worker registers with its device, and the coordinator gives CUDA jobs to workers that say
// "cuda:N". One that says so without a usable device would take every CUDA job and fail each
// attempt, so dino-worker refuses to start instead, with one line that names the flag and what
// it found:
//
//   --device cuda:0: no CUDA device is visible (torch::cuda::device_count() = 0)
//   --device cuda:2: only 1 CUDA device is visible (cuda:0)
//   --device cuda:0: this dino-worker was built for CPU only (LibTorch 1.13.0 without CUDA); ...
//
// The check is split so that every case is tested without a GPU: ParseWorkerDevice and
// CheckWorkerDevice are pure, and only CurrentCudaFacts asks LibTorch (through the TorchCall seam).
//
// Thread-safety: stateless. Failure: INVALID_ARGUMENT for a malformed flag, FAILED_PRECONDITION
// for a device this process cannot use; the message starts with "--device <flag>: ".
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dino::agent {

// A parsed --device: "cpu", "cuda" (= cuda:0) or "cuda:N" with N >= 0.
struct WorkerDevice {
  bool cuda = false;
  int64_t index = 0;  // CUDA only.
};

absl::StatusOr<WorkerDevice> ParseWorkerDevice(absl::string_view flag);

// What this process can use for CUDA.
struct CudaFacts {
  bool built_with_cuda = false;  // DINO_WITH_CUDA.
  std::string torch_version;     // LibTorch's TORCH_VERSION.
  // torch::cuda::device_count(), or why it could not be read (a driver error, say).
  absl::StatusOr<int64_t> device_count = 0;
};

// The facts of this build and machine. Asks LibTorch for the device count only when built with
// CUDA (a CPU build has none to count).
CudaFacts CurrentCudaFacts();

// OK when `flag` names "cpu", or a CUDA device that `facts` says is visible.
absl::Status CheckWorkerDevice(absl::string_view flag, const CudaFacts& facts);

// CheckWorkerDevice against CurrentCudaFacts(), which are gathered only for a CUDA flag.
absl::Status CheckWorkerDevice(absl::string_view flag);

}  // namespace dino::agent
