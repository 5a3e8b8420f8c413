// Helpers for running the real DINO Trainer on several ranks in the worker/dist tests: a tiny
// configuration, deterministic crops and the per-rank slice of a global batch, and copies of a
// Trainer's state for comparisons.
//
// Thread-safety: MakeGlobalCrops draws from a private generator, so rank threads may call it
// concurrently. Failure: none (LibTorch errors throw; tests call these outside any seam).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "worker/dino/config.h"
#include "worker/dino/trainer.h"

namespace dino::dist::testing {

// The per-rank batch the process tests and dist_rank_helper use.
constexpr int64_t kRankBatch = 4;

// dim 16, depth 2, 2 heads, patch 4, 16 px global / 8 px local crops (2 locals), K 64, one intra-op
// thread, drop-path off, no lr warm-up (so the very first steps move the weights), two steps per
// epoch (the last layer unfreezes at step 2). `batch_per_rank` and `world_size` as given.
TrainConfig TinyDinoConfig(int64_t batch_per_rank, int64_t world_size);

// The crops of global step `step` for a global batch of `global_batch` images.
std::vector<torch::Tensor> MakeGlobalCrops(const TrainConfig& config, int64_t global_batch,
                                           int64_t step);

// Rows [rank * per_rank, (rank + 1) * per_rank) of every crop.
std::vector<torch::Tensor> RankSlice(const std::vector<torch::Tensor>& crops, int rank,
                                     int64_t per_rank);

// Detached CPU copies of the student's and teacher's parameters and buffers (module order) and
// the center.
struct TrainerState {
  std::vector<torch::Tensor> student;
  std::vector<torch::Tensor> teacher;
  torch::Tensor center;
};
TrainerState CaptureState(Trainer& trainer);
// Copies `state` into `trainer`'s student and teacher in place (aliases stay valid).
void RestoreWeights(Trainer& trainer, const TrainerState& state);

// What ranks must agree on after loading a checkpoint or training: student and teacher
// parameters, and the center (for VerifySameParameters).
std::vector<torch::Tensor> AgreementTensors(Trainer& trainer);

// Largest absolute difference over matching tensors; +inf when counts or shapes differ.
double MaxAbsDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b);
bool BitIdentical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b);

}  // namespace dino::dist::testing
