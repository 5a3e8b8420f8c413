// C10dCollectives: dino::Collectives over a ProcessGroupHandle, plus the start-up and statistics
// helpers built on any dino::Collectives:
//   - VerifySameParameters: the cheap checksum all-reduce a resumed run uses to check that every
//     rank loaded the same checkpoint.
//   - GlobalMeans: the mean over ranks of a small vector of step statistics, so rank 0 reports
//     global figures.
//
// Ownership: C10dCollectives borrows the handle, which must outlive it.
// Thread-safety: one training thread per rank, as dino::Collectives requires. Every rank must make
// the same sequence of calls.
// Failure: ABORTED when the group is torn down or a peer dies or hangs (within the group's
// timeout); FAILED_PRECONDITION when ranks hold different parameters; INVALID_ARGUMENT for a tensor
// on the wrong device.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/dino/collectives.h"
#include "worker/dist/process_group.h"

namespace dino::dist {

class C10dCollectives final : public dino::Collectives {
 public:
  explicit C10dCollectives(ProcessGroupHandle* group) : group_(group) {}

  int rank() const override { return group_->rank(); }
  int world_size() const override { return group_->world_size(); }
  // `t` must live on the group's device (CPU for Gloo, CUDA for NCCL).
  absl::Status AllReduceSum(torch::Tensor& t) override;
  absl::Status Broadcast(torch::Tensor& t, int root) override;

  ProcessGroupHandle* group() const { return group_; }

 private:
  absl::Status CheckDevice(const torch::Tensor& t) const;
  ProcessGroupHandle* group_;
};

// Checks that all ranks hold the same `params` (same count, shapes and values up to a relative
// 1e-9 of float reduction-order noise) with one all-reduce of a [world_size, 2 * params.size() + 1]
// float64 matrix on `device`. Every rank gets the same verdict. FAILED_PRECONDITION names the first
// disagreeing parameter and rank.
absl::Status VerifySameParameters(Collectives* collectives,
                                  const std::vector<torch::Tensor>& params,
                                  const torch::Device& device = torch::kCPU);

// Mean over ranks of `local` (same length on every rank), computed on `device`.
absl::StatusOr<std::vector<double>> GlobalMeans(Collectives* collectives,
                                                absl::Span<const double> local,
                                                const torch::Device& device = torch::kCPU);

}  // namespace dino::dist
