// TrainConfig: the plain description of one DINO training run, mirroring the job spec.
//
// It is built by the caller (the worker agent converts the proto, tests and benchmarks fill it
// directly) and passed by const reference; the Trainer keeps its own copy. Its initial values are
// the job spec's defaults (spec/defaults.h: DINO's, where the paper or its reference implementation
// defines one, docs/dino.md), so a TrainConfig left alone trains what an empty job spec trains.
//
// Thread-safety: a plain value type.
// Failure: Validate() returns INVALID_ARGUMENT naming the first offending field.
// ToKeyValues()/FromKeyValues() give a stable text form stored in checkpoints, keyed by the member
// names; FromKeyValues() also reads the keys older checkpoints used ("head.hidden") and returns
// INVALID_ARGUMENT for an unknown preset or an unparsable value.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spec/defaults.h"

namespace dino {

struct ModelConfig {
  // A preset of spec/defaults.h sets dim/depth/heads; "custom" uses the fields below.
  std::string preset = std::string(spec::kJobSpecDefaults.model.preset);
  int64_t dim = spec::kJobSpecDefaults.model.dim;
  int64_t depth = spec::kJobSpecDefaults.model.depth;
  int64_t heads = spec::kJobSpecDefaults.model.heads;
  int64_t patch_size = spec::kJobSpecDefaults.model.patch_size;
  // The trained grid: the global crop size.
  int64_t image_size = spec::kJobSpecDefaults.augmentation.global_crop_size;
  int64_t in_channels = spec::kJobSpecDefaults.model.in_channels;
  double mlp_ratio = spec::kJobSpecDefaults.model.mlp_ratio;
  // Student only; rises linearly with depth.
  double drop_path_rate = spec::kJobSpecDefaults.model.drop_path_rate;
};

struct HeadConfig {
  int64_t out_dim = spec::kJobSpecDefaults.head.out_dim;  // K
  int64_t hidden_dim = spec::kJobSpecDefaults.head.hidden_dim;
  int64_t bottleneck_dim = spec::kJobSpecDefaults.head.bottleneck_dim;
  int64_t nlayers = spec::kJobSpecDefaults.head.nlayers;
  bool use_bn = spec::kJobSpecDefaults.head.use_bn;
  bool norm_last_layer = spec::kJobSpecDefaults.head.norm_last_layer;
};

struct DinoLossConfig {
  double student_temp = spec::kJobSpecDefaults.dino.student_temp;
  double teacher_temp = spec::kJobSpecDefaults.dino.teacher_temp;
  double warmup_teacher_temp = spec::kJobSpecDefaults.dino.warmup_teacher_temp;
  int64_t warmup_teacher_temp_epochs = spec::kJobSpecDefaults.dino.warmup_teacher_temp_epochs;
  double center_momentum = spec::kJobSpecDefaults.dino.center_momentum;
  double momentum_teacher = spec::kJobSpecDefaults.dino.momentum_teacher;
};

struct OptimConfig {
  int64_t epochs = spec::kJobSpecDefaults.optim.epochs;
  int64_t batch_size_per_rank = spec::kJobSpecDefaults.optim.batch_size_per_rank;
  // Base lr for a global batch of 256; scaled linearly.
  double lr = spec::kJobSpecDefaults.optim.lr;
  double min_lr = spec::kJobSpecDefaults.optim.min_lr;
  int64_t warmup_epochs = spec::kJobSpecDefaults.optim.warmup_epochs;
  double weight_decay = spec::kJobSpecDefaults.optim.weight_decay;
  double weight_decay_end = spec::kJobSpecDefaults.optim.weight_decay_end;
  // Per-parameter gradient norm bound; 0 disables clipping.
  double clip_grad = spec::kJobSpecDefaults.optim.clip_grad;
  int64_t freeze_last_layer = spec::kJobSpecDefaults.optim.freeze_last_layer;
};

// The crop geometry of a run: the one source of the crop sizes (the augmentation's views and the
// ViT's grid are set from it).
struct CropConfig {
  int64_t global_crop_size = spec::kJobSpecDefaults.augmentation.global_crop_size;
  int64_t local_crop_size = spec::kJobSpecDefaults.augmentation.local_crop_size;
  int64_t n_local_crops = spec::kJobSpecDefaults.augmentation.n_local_crops;
};

struct TrainConfig {
  ModelConfig model;
  HeadConfig head;
  DinoLossConfig dino;
  OptimConfig optim;
  CropConfig crops;
  int64_t steps_per_epoch = 1;  // Given by the caller: the loader knows it.
  int64_t world_size = spec::kJobSpecDefaults.resources.world_size;
  std::string device = "cpu";  // "cpu" or "cuda:N".
  // bf16 autocast; only effective on CUDA.
  bool bf16 = spec::kJobSpecDefaults.optim.bf16;
  // Intra-op threads; 0 = all cores.
  int64_t threads = spec::kJobSpecDefaults.resources.threads_per_rank;
  // CPU runs on one rank without head BatchNorm: the batch is split into this many parts, whose
  // forward and backward run concurrently on their own threads (threads / parts intra-op threads
  // each); the gradients are summed in part order, so a run stays deterministic. 0 = automatic:
  // min(threads, batch / 16) parts where a split is possible, else 1. Not part of the checkpoint
  // config: it changes how a step is computed, not what (up to float rounding).
  int64_t micro_batches = 0;
  uint64_t seed = spec::kJobSpecDefaults.seed;

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
