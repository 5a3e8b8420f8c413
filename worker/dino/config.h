// TrainConfig: the plain description of one DINO training run, mirroring the job spec.
//
// It is built by the caller (the worker agent converts the proto, tests and benchmarks fill it
// directly) and passed by const reference; the Trainer keeps its own copy. Defaults are those of
// the DINO paper and its reference implementation (see docs/dino.md).
//
// Thread-safety: a plain value type.
// Failure: Validate() returns INVALID_ARGUMENT naming the first offending field.
// ToKeyValues()/FromKeyValues() give a stable text form stored in checkpoints; FromKeyValues()
// returns INVALID_ARGUMENT for an unknown preset or an unparsable value.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dino {

struct ModelConfig {
  // "vit_tiny", "vit_small", "vit_base" set dim/depth/heads; "custom" uses the fields below.
  std::string preset = "vit_small";
  int64_t dim = 384;
  int64_t depth = 12;
  int64_t heads = 6;
  int64_t patch_size = 16;
  int64_t image_size = 224;  // The trained grid: the global crop size.
  int64_t in_channels = 3;
  double mlp_ratio = 4.0;
  double drop_path_rate = 0.1;  // Student only; rises linearly with depth.
};

struct HeadConfig {
  int64_t out_dim = 65536;  // K
  int64_t hidden = 2048;
  int64_t bottleneck = 256;
  int64_t nlayers = 3;
  bool use_bn = false;
  bool norm_last_layer = true;
};

struct DinoLossConfig {
  double student_temp = 0.1;
  double teacher_temp = 0.07;
  double warmup_teacher_temp = 0.04;
  int64_t warmup_teacher_temp_epochs = 30;
  double center_momentum = 0.9;
  double momentum_teacher = 0.996;
};

struct OptimConfig {
  int64_t epochs = 100;
  int64_t batch_size_per_rank = 64;
  double lr = 0.0005;  // Base lr for a global batch of 256; scaled linearly.
  double min_lr = 1e-6;
  int64_t warmup_epochs = 10;
  double weight_decay = 0.04;
  double weight_decay_end = 0.4;
  double clip_grad = 3.0;  // Per-parameter gradient norm bound; 0 disables clipping.
  int64_t freeze_last_layer = 1;
};

struct CropConfig {
  int64_t global_crop_size = 224;
  int64_t local_crop_size = 96;
  int64_t n_local_crops = 8;
};

struct TrainConfig {
  ModelConfig model;
  HeadConfig head;
  DinoLossConfig dino;
  OptimConfig optim;
  CropConfig crops;
  int64_t steps_per_epoch = 1;  // Given by the caller: the loader knows it.
  int64_t world_size = 1;
  std::string device = "cpu";  // "cpu" or "cuda:N".
  bool bf16 = false;           // bf16 autocast; only effective on CUDA.
  int64_t threads = 0;         // Intra-op threads; 0 = all cores.
  // CPU runs on one rank without head BatchNorm: the batch is split into this many parts, whose
  // forward and backward run concurrently on their own threads (threads / parts intra-op threads
  // each); the gradients are summed in part order, so a run stays deterministic. 0 = automatic:
  // min(threads, batch / 16) parts where a split is possible, else 1. Not part of the checkpoint
  // config: it changes how a step is computed, not what (up to float rounding).
  int64_t micro_batches = 0;
  uint64_t seed = 0;

  // Resolves the model preset into dim/depth/heads ("custom" keeps them).
  absl::Status ApplyPreset();
  absl::Status Validate() const;

  int64_t global_batch() const { return optim.batch_size_per_rank * world_size; }
  int64_t total_steps() const { return optim.epochs * steps_per_epoch; }
  int64_t n_crops() const { return 2 + crops.n_local_crops; }
  double scaled_lr() const { return optim.lr * static_cast<double>(global_batch()) / 256.0; }

  // Stable "section.field" -> value text form, e.g. {"model.dim", "384"}.
  std::map<std::string, std::string> ToKeyValues() const;
  static absl::StatusOr<TrainConfig> FromKeyValues(const std::map<std::string, std::string>& kv);
  // The keys whose values must match for a checkpoint to be loadable (the architecture).
  static const char* const* ArchitectureKeys();
};

}  // namespace dino
