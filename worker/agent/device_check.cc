#include "worker/agent/device_check.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/dino/torch_status.h"

namespace dino::agent {
namespace {

std::string DeviceFlagPrefix(absl::string_view flag) {
  return absl::StrCat("--device ", flag, ": ");
}

// "cuda:0", "cuda:0, cuda:1", or "cuda:0 ... cuda:7" for many.
std::string VisibleCudaDevices(int64_t count) {
  if (count > 4) return absl::StrCat("cuda:0 ... cuda:", count - 1);
  std::vector<std::string> names;
  for (int64_t i = 0; i < count; ++i) names.push_back(absl::StrCat("cuda:", i));
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<WorkerDevice> ParseWorkerDevice(absl::string_view flag) {
  if (flag == "cpu") return WorkerDevice{};
  if (flag == "cuda") return WorkerDevice{true, 0};
  int64_t index = -1;
  if (absl::StartsWith(flag, "cuda:") && absl::SimpleAtoi(flag.substr(5), &index) && index >= 0 &&
      // SimpleAtoi takes "+1" and " 1"; only the digits the device name is printed with count.
      flag.substr(5) == absl::StrCat(index)) {
    return WorkerDevice{true, index};
  }
  return absl::InvalidArgumentError(absl::StrCat(
      DeviceFlagPrefix(flag), "must be cpu, cuda or cuda:N with N a device index >= 0"));
}

CudaFacts CurrentCudaFacts() {
  CudaFacts facts;
  facts.torch_version = TORCH_VERSION;
#if defined(DINO_WITH_CUDA)
  facts.built_with_cuda = true;
  // The count's type differs between LibTorch versions (size_t on 1.13, DeviceIndex on 2.x).
  facts.device_count = dino::TorchCallOr("torch::cuda::device_count()", [] {
    return static_cast<int64_t>(torch::cuda::device_count());
  });
#endif
  return facts;
}

absl::Status CheckWorkerDevice(absl::string_view flag, const CudaFacts& facts) {
  absl::StatusOr<WorkerDevice> device = ParseWorkerDevice(flag);
  if (!device.ok()) return device.status();
  if (!device->cuda) return absl::OkStatus();
  if (!facts.built_with_cuda) {
    return absl::FailedPreconditionError(
        absl::StrCat(DeviceFlagPrefix(flag), "this dino-worker was built for CPU only (LibTorch ",
                     facts.torch_version, " without CUDA); build with DINO_WITH_CUDA=ON"));
  }
  if (!facts.device_count.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(DeviceFlagPrefix(flag),
                     "could not count CUDA devices: ", facts.device_count.status().message()));
  }
  const int64_t count = *facts.device_count;
  if (count <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        DeviceFlagPrefix(flag), "no CUDA device is visible (torch::cuda::device_count() = ", count,
        "); check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES"));
  }
  if (device->index >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat(DeviceFlagPrefix(flag), "only ", count,
                     count == 1 ? " CUDA device is" : " CUDA devices are", " visible (",
                     VisibleCudaDevices(count), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckWorkerDevice(absl::string_view flag) {
  absl::StatusOr<WorkerDevice> device = ParseWorkerDevice(flag);
  if (!device.ok()) return device.status();
  if (!device->cuda) return absl::OkStatus();
  return CheckWorkerDevice(flag, CurrentCudaFacts());
}

}  // namespace dino::agent
