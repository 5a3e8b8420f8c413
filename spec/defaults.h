// The job spec's defaults: the one table of every JobSpec default, and the model presets.
//
// Each struct mirrors one message of proto/dino/v1/job.proto, member for member, with the same
// names; a member's initializer is the default that job.proto documents next to the field ("//
// Default X."), which tests/spec/defaults_test.cc checks against the proto's comments.
// ApplyJobSpecDefaults (spec/job_spec.h) fills an unset field from here, and the DINO core's own
// structs (TrainConfig, AugmentOptions) take their initial values from here too, so a spec left
// empty and a struct left alone train the same.
//
// Plain constants without protobuf, so that the DINO core, which builds without the service's
// dependencies, can read them. Enum defaults are the proto value names.
//
// Thread-safety: constants.
#pragma once

#include <cstdint>
#include <string_view>

namespace dino::spec {

// A model preset: the ViT shape it stands for. "custom" takes the shape from the spec instead.
struct ModelPreset {
  std::string_view name;
  int64_t dim;
  int64_t depth;
  int64_t heads;
};

inline constexpr ModelPreset kDefaultModelPreset = {"vit_small", 384, 12, 6};
inline constexpr ModelPreset kModelPresets[] = {
    {"vit_tiny", 192, 12, 3},
    kDefaultModelPreset,
    {"vit_base", 768, 12, 12},
};
inline constexpr std::string_view kCustomModelPreset = "custom";

// The preset named `name`, or nullptr (also for "custom").
constexpr const ModelPreset* FindModelPreset(std::string_view name) {
  for (const ModelPreset& preset : kModelPresets) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

struct ModelSpecDefaults {
  std::string_view preset = kDefaultModelPreset.name;
  int64_t dim = kDefaultModelPreset.dim;
  int64_t depth = kDefaultModelPreset.depth;
  int64_t heads = kDefaultModelPreset.heads;
  int64_t patch_size = 16;
  int64_t in_channels = 3;
  double mlp_ratio = 4.0;
  double drop_path_rate = 0.1;
};

struct HeadSpecDefaults {
  int64_t out_dim = 65536;
  int64_t hidden_dim = 2048;
  int64_t bottleneck_dim = 256;
  int64_t nlayers = 3;
  bool use_bn = false;
  bool norm_last_layer = true;
};

// data.kind has no default: a spec must name its dataset.
struct DataSpecDefaults {
  std::string_view path = "";
  std::string_view labels_path = "";
  std::string_view eval_path = "";
  std::string_view eval_labels_path = "";
  int64_t max_short_side = 256;
  int64_t loader_threads = 2;
  int64_t max_corrupt = 100;
  int64_t synthetic_images = 1024;
  int64_t synthetic_classes = 10;
  int64_t synthetic_image_size = 32;
};

struct AugmentationSpecDefaults {
  int64_t global_crop_size = 224;
  int64_t local_crop_size = 96;
  int64_t n_local_crops = 8;
  double global_crop_scale_min = 0.4;
  double global_crop_scale_max = 1.0;
  double local_crop_scale_min = 0.05;
  double local_crop_scale_max = 0.4;
  double flip_prob = 0.5;
  double color_jitter_prob = 0.8;
  double brightness = 0.4;
  double contrast = 0.4;
  double saturation = 0.2;
  double hue = 0.1;
  double grayscale_prob = 0.2;
  double blur_prob_global1 = 1.0;
  double blur_prob_global2 = 0.1;
  double blur_prob_local = 0.5;
  // The reference's σ range, whatever the crop size: on 28-px Fashion-MNIST it trains a better
  // k-NN than a range scaled down to the crop.
  double blur_sigma_min = 0.1;
  double blur_sigma_max = 2.0;
  double solarization_prob = 0.2;
};

struct OptimSpecDefaults {
  int64_t epochs = 100;
  int64_t batch_size_per_rank = 64;
  double lr = 0.0005;
  double min_lr = 1e-6;
  int64_t warmup_epochs = 10;
  double weight_decay = 0.04;
  double weight_decay_end = 0.4;
  double clip_grad = 3.0;
  int64_t freeze_last_layer = 1;
  bool bf16 = false;
};

struct DinoSpecDefaults {
  double student_temp = 0.1;
  double teacher_temp = 0.07;
  double warmup_teacher_temp = 0.04;
  int64_t warmup_teacher_temp_epochs = 30;
  double momentum_teacher = 0.996;
  double center_momentum = 0.9;
};

struct ResourceSpecDefaults {
  int64_t world_size = 1;
  std::string_view device = "DEVICE_KIND_CPU";
  int64_t threads_per_rank = 0;
};

struct CheckpointPolicyDefaults {
  int64_t every_steps = 0;
  int64_t keep_last = 3;
  int64_t keep_best = 1;
};

struct EvalSpecDefaults {
  int64_t every_epochs = 0;
  int64_t knn_k = 20;
  double knn_temperature = 0.07;
};

// collapse.ignore_before_epoch has no constant default: it is the spec's optim.warmup_epochs.
struct CollapseSpecDefaults {
  std::string_view policy = "COLLAPSE_POLICY_WARN";
  double min_kl = 1e-4;
  double min_batch_mean_entropy = 0.05;
  int64_t consecutive_reports = 5;
};

struct JobSpecDefaults {
  std::string_view name = "";
  int32_t priority = 0;
  std::string_view request_id = "";
  ModelSpecDefaults model;
  HeadSpecDefaults head;
  DataSpecDefaults data;
  AugmentationSpecDefaults augmentation;
  OptimSpecDefaults optim;
  DinoSpecDefaults dino;
  ResourceSpecDefaults resources;
  CheckpointPolicyDefaults checkpoint;
  EvalSpecDefaults eval;
  CollapseSpecDefaults collapse;
  int64_t max_restarts = 3;
  uint64_t seed = 0;
  int64_t progress_every_steps = 10;
  int64_t progress_timeout_seconds = 3600;
};

inline constexpr JobSpecDefaults kJobSpecDefaults{};

}  // namespace dino::spec
