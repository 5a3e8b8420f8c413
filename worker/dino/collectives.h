// The distributed seams of the DINO core. The core never names c10d: it is handed these
// interfaces. On one rank it uses LocalCollectives / LocalGradientSync (identities); the
// distributed layer (worker/dist) implements them over a c10d process group (Gloo on CPU, NCCL on
// CUDA).
//
// Ownership: the caller that builds the Trainer owns the implementations and keeps them alive for
// the Trainer's lifetime.
// Thread-safety: called only from the training thread of one rank.
// Failure: a torn-down or timed-out collective returns ABORTED; the step is then abandoned.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "absl/status/status.h"

namespace dino {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In-place sum of `t` over all ranks (blocking). Used for the DINO center and global statistics.
  virtual absl::Status AllReduceSum(torch::Tensor& t) = 0;
  // In-place broadcast of `t` from `root` (blocking). Used to agree on initial weights.
  virtual absl::Status Broadcast(torch::Tensor& t, int root) = 0;
};

// Averages student gradients across ranks, DDP-style.
// Protocol per step: BeginStep() → loss.backward() → FinishStep() → clip → optimizer step.
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // Called once with the student's trainable parameters, in a fixed order identical on all ranks.
  // Implementations may install autograd hooks on them.
  virtual absl::Status Attach(const std::vector<torch::Tensor>& params) = 0;
  virtual void BeginStep() = 0;
  // Waits for every outstanding reduction; afterwards every attached parameter's grad is the mean
  // over ranks (parameters with no grad on any rank keep an undefined grad).
  virtual absl::Status FinishStep() = 0;
};

// One rank: sums and broadcasts are identities.
class LocalCollectives final : public Collectives {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(torch::Tensor&) override { return absl::OkStatus(); }
  absl::Status Broadcast(torch::Tensor&, int) override { return absl::OkStatus(); }
};

class LocalGradientSync final : public GradientSync {
 public:
  absl::Status Attach(const std::vector<torch::Tensor>&) override { return absl::OkStatus(); }
  void BeginStep() override {}
  absl::Status FinishStep() override { return absl::OkStatus(); }
};

}  // namespace dino
