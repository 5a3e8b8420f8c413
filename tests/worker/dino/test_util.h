// Test helpers for the DINO core: small configurations, deterministic crops, tensor dictionaries
// exchanged with the Python reference (tests/worker/dino/reference_dino.py) as torch.save files,
// and running that reference under /usr/bin/python3.
//
// Thread-safety: single-threaded test code. Failure: gtest assertions (ADD_FAILURE) plus empty
// results; RunReference returns the script's exit status and output.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "worker/dino/config.h"
#include "worker/dino/trainer.h"

namespace dino::testing {

using TensorDict = std::map<std::string, torch::Tensor>;

// A tiny custom model (dim 16, depth 2, 2 heads, patch 4, 16 px global, 8 px local, K 64) so a
// full step takes milliseconds; one thread, drop-path off, schedules short.
TrainConfig TinyConfig();

// The crops of step `step` for `config`: 2 global + n_local local, deterministic in (seed, step),
// drawn from a private generator (the global one is left alone).
std::vector<torch::Tensor> MakeCrops(const TrainConfig& config, int64_t step, uint64_t seed = 7);

// torch.save-compatible dict of tensors (Python's torch.load returns a dict).
void WriteDict(const std::string& path, const TensorDict& dict);
TensorDict ReadDict(const std::string& path);
torch::Tensor StringTensor(const std::string& s);  // uint8 bytes, decoded by the script.

// "cfg.*" entries the reference builds its models and schedules from.
void AddConfig(const TrainConfig& config, TensorDict* dict);
// "w.<name>" for every parameter and buffer of `module` (CPU copies).
void AddWeights(const torch::nn::Module& module, TensorDict* dict,
                const std::string& prefix = "w.");

// Everything a later step depends on, except the optimizer moments (covered by stepping on):
// "student.*", "teacher.*" (AddWeights) and "center".
TensorDict TrainerState(Trainer& trainer);

// A fresh empty directory under the test temp dir.
std::string MakeTempDir(const std::string& tag);

// Runs the reference over every <case>_in.pt in `dir`; returns the exit status, output in *log.
int RunReference(const std::string& dir, std::string* log);

// Largest absolute difference; +inf when the shapes differ.
double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace dino::testing
