#include "worker/dino/config.h"

#include <functional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace dino {
namespace {

// One serializable field: how to print it and how to parse it back.
struct Field {
  const char* key;
  std::function<std::string(const TrainConfig&)> get;
  std::function<bool(TrainConfig&, const std::string&)> set;
};

template <typename Section, typename T>
Field Make(const char* key, Section TrainConfig::*section, T Section::*member) {
  Field f;
  f.key = key;
  f.get = [section, member](const TrainConfig& c) -> std::string {
    const T& v = (c.*section).*member;
    if constexpr (std::is_same_v<T, std::string>) {
      return v;
    } else if constexpr (std::is_same_v<T, bool>) {
      return v ? "true" : "false";
    } else if constexpr (std::is_floating_point_v<T>) {
      return absl::StrFormat("%.17g", v);
    } else {
      return absl::StrCat(v);
    }
  };
  f.set = [section, member](TrainConfig& c, const std::string& s) -> bool {
    T& v = (c.*section).*member;
    if constexpr (std::is_same_v<T, std::string>) {
      v = s;
      return true;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (s != "true" && s != "false") return false;
      v = (s == "true");
      return true;
    } else if constexpr (std::is_floating_point_v<T>) {
      return absl::SimpleAtod(s, &v);
    } else {
      return absl::SimpleAtoi(s, &v);
    }
  };
  return f;
}

template <typename T>
Field MakeTop(const char* key, T TrainConfig::*member) {
  Field f;
  f.key = key;
  f.get = [member](const TrainConfig& c) -> std::string {
    const T& v = c.*member;
    if constexpr (std::is_same_v<T, std::string>) {
      return v;
    } else if constexpr (std::is_same_v<T, bool>) {
      return v ? "true" : "false";
    } else {
      return absl::StrCat(v);
    }
  };
  f.set = [member](TrainConfig& c, const std::string& s) -> bool {
    T& v = c.*member;
    if constexpr (std::is_same_v<T, std::string>) {
      v = s;
      return true;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (s != "true" && s != "false") return false;
      v = (s == "true");
      return true;
    } else {
      return absl::SimpleAtoi(s, &v);
    }
  };
  return f;
}

const std::vector<Field>& Fields() {
  static const auto* fields = new std::vector<Field>{
      Make("model.preset", &TrainConfig::model, &ModelConfig::preset),
      Make("model.dim", &TrainConfig::model, &ModelConfig::dim),
      Make("model.depth", &TrainConfig::model, &ModelConfig::depth),
      Make("model.heads", &TrainConfig::model, &ModelConfig::heads),
      Make("model.patch_size", &TrainConfig::model, &ModelConfig::patch_size),
      Make("model.image_size", &TrainConfig::model, &ModelConfig::image_size),
      Make("model.in_channels", &TrainConfig::model, &ModelConfig::in_channels),
      Make("model.mlp_ratio", &TrainConfig::model, &ModelConfig::mlp_ratio),
      Make("model.drop_path_rate", &TrainConfig::model, &ModelConfig::drop_path_rate),
      Make("head.out_dim", &TrainConfig::head, &HeadConfig::out_dim),
      Make("head.hidden_dim", &TrainConfig::head, &HeadConfig::hidden_dim),
      Make("head.bottleneck_dim", &TrainConfig::head, &HeadConfig::bottleneck_dim),
      Make("head.nlayers", &TrainConfig::head, &HeadConfig::nlayers),
      Make("head.use_bn", &TrainConfig::head, &HeadConfig::use_bn),
      Make("head.norm_last_layer", &TrainConfig::head, &HeadConfig::norm_last_layer),
      Make("dino.student_temp", &TrainConfig::dino, &DinoLossConfig::student_temp),
      Make("dino.teacher_temp", &TrainConfig::dino, &DinoLossConfig::teacher_temp),
      Make("dino.warmup_teacher_temp", &TrainConfig::dino, &DinoLossConfig::warmup_teacher_temp),
      Make("dino.warmup_teacher_temp_epochs", &TrainConfig::dino,
           &DinoLossConfig::warmup_teacher_temp_epochs),
      Make("dino.center_momentum", &TrainConfig::dino, &DinoLossConfig::center_momentum),
      Make("dino.momentum_teacher", &TrainConfig::dino, &DinoLossConfig::momentum_teacher),
      Make("optim.epochs", &TrainConfig::optim, &OptimConfig::epochs),
      Make("optim.batch_size_per_rank", &TrainConfig::optim, &OptimConfig::batch_size_per_rank),
      Make("optim.lr", &TrainConfig::optim, &OptimConfig::lr),
      Make("optim.min_lr", &TrainConfig::optim, &OptimConfig::min_lr),
      Make("optim.warmup_epochs", &TrainConfig::optim, &OptimConfig::warmup_epochs),
      Make("optim.weight_decay", &TrainConfig::optim, &OptimConfig::weight_decay),
      Make("optim.weight_decay_end", &TrainConfig::optim, &OptimConfig::weight_decay_end),
      Make("optim.clip_grad", &TrainConfig::optim, &OptimConfig::clip_grad),
      Make("optim.freeze_last_layer", &TrainConfig::optim, &OptimConfig::freeze_last_layer),
      Make("crops.global_crop_size", &TrainConfig::crops, &CropConfig::global_crop_size),
      Make("crops.local_crop_size", &TrainConfig::crops, &CropConfig::local_crop_size),
      Make("crops.n_local_crops", &TrainConfig::crops, &CropConfig::n_local_crops),
      MakeTop("steps_per_epoch", &TrainConfig::steps_per_epoch),
      MakeTop("world_size", &TrainConfig::world_size),
      MakeTop("device", &TrainConfig::device),
      MakeTop("bf16", &TrainConfig::bf16),
      MakeTop("threads", &TrainConfig::threads),
      MakeTop("seed", &TrainConfig::seed),
  };
  return *fields;
}

absl::Status NonNegative(const char* field, double v) {
  if (v >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " must be >= 0, got ", v));
}

absl::Status InRange(const char* field, double v, double lo, double hi) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be in [", lo, ", ", hi, "], got ", v));
}

// Keys of checkpoints written before the head's fields took the job spec's names: {old, new}.
constexpr std::pair<const char*, const char*> kRenamedKeys[] = {
    {"head.hidden", "head.hidden_dim"},
    {"head.bottleneck", "head.bottleneck_dim"},
};

// "vit_tiny, vit_small, vit_base or custom": the presets of spec/defaults.h.
absl::Status CheckPreset(const std::string& name) {
  if (spec::FindModelPreset(name) != nullptr || name == spec::kCustomModelPreset) {
    return absl::OkStatus();
  }
  std::string names;
  for (const spec::ModelPreset& preset : spec::kModelPresets) {
    absl::StrAppend(&names, std::string(preset.name), ", ");
  }
  names.resize(names.size() - 2);
  return absl::InvalidArgumentError(absl::StrCat("model.preset must be ", names, " or ",
                                                 std::string(spec::kCustomModelPreset), ", got '",
                                                 name, "'"));
}

}  // namespace

absl::Status TrainConfig::ApplyPreset() {
  DINO_RETURN_IF_ERROR(CheckPreset(model.preset));
  if (const spec::ModelPreset* preset = spec::FindModelPreset(model.preset)) {
    model.dim = preset->dim, model.depth = preset->depth, model.heads = preset->heads;
  }
  return absl::OkStatus();
}

absl::Status TrainConfig::Validate() const {
  DINO_RETURN_IF_ERROR(CheckPreset(model.preset));
  for (const auto& [name, v] : std::vector<std::pair<const char*, int64_t>>{
           {"model.dim", model.dim},
           {"model.depth", model.depth},
           {"model.heads", model.heads},
           {"model.patch_size", model.patch_size},
           {"model.image_size", model.image_size},
           {"model.in_channels", model.in_channels},
           {"head.out_dim", head.out_dim},
           {"head.hidden_dim", head.hidden_dim},
           {"head.bottleneck_dim", head.bottleneck_dim},
           {"head.nlayers", head.nlayers},
           {"optim.epochs", optim.epochs},
           {"optim.batch_size_per_rank", optim.batch_size_per_rank},
           {"crops.global_crop_size", crops.global_crop_size},
           {"crops.local_crop_size", crops.local_crop_size},
           {"steps_per_epoch", steps_per_epoch},
           {"world_size", world_size}}) {
    if (v < 1) return absl::InvalidArgumentError(absl::StrCat(name, " must be >= 1, got ", v));
  }
  if (model.dim % model.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.dim (", model.dim, ") must be divisible by model.heads (", model.heads, ")"));
  }
  if (model.image_size % model.patch_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model.image_size (", model.image_size,
                                                   ") must be a multiple of model.patch_size (",
                                                   model.patch_size, ")"));
  }
  if (crops.global_crop_size != model.image_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("crops.global_crop_size (", crops.global_crop_size,
                     ") must equal model.image_size (", model.image_size, ")"));
  }
  if (crops.local_crop_size < model.patch_size) {
    return absl::InvalidArgumentError(absl::StrCat("crops.local_crop_size (", crops.local_crop_size,
                                                   ") must be >= model.patch_size (",
                                                   model.patch_size, ")"));
  }
  if (crops.n_local_crops < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("crops.n_local_crops must be >= 0, got ", crops.n_local_crops));
  }
  if (!(model.mlp_ratio > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.mlp_ratio must be > 0, got ", model.mlp_ratio));
  }
  for (const absl::Status& st : {
           InRange("model.drop_path_rate", model.drop_path_rate, 0.0, 1.0 - 1e-9),
           InRange("dino.center_momentum", dino.center_momentum, 0.0, 1.0),
           InRange("dino.momentum_teacher", dino.momentum_teacher, 0.0, 1.0),
           NonNegative("optim.lr", optim.lr),
           NonNegative("optim.min_lr", optim.min_lr),
           NonNegative("optim.weight_decay", optim.weight_decay),
           NonNegative("optim.weight_decay_end", optim.weight_decay_end),
           NonNegative("optim.clip_grad", optim.clip_grad),
           NonNegative("optim.warmup_epochs", static_cast<double>(optim.warmup_epochs)),
           NonNegative("optim.freeze_last_layer", static_cast<double>(optim.freeze_last_layer)),
           NonNegative("dino.warmup_teacher_temp_epochs",
                       static_cast<double>(dino.warmup_teacher_temp_epochs)),
           NonNegative("threads", static_cast<double>(threads)),
           NonNegative("micro_batches", static_cast<double>(micro_batches)),
       }) {
    if (!st.ok()) return st;
  }
  for (const auto& [name, v] : std::vector<std::pair<const char*, double>>{
           {"dino.student_temp", dino.student_temp},
           {"dino.teacher_temp", dino.teacher_temp},
           {"dino.warmup_teacher_temp", dino.warmup_teacher_temp}}) {
    if (!(v > 0)) return absl::InvalidArgumentError(absl::StrCat(name, " must be > 0, got ", v));
  }
  if (device != "cpu" && device.rfind("cuda", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device must be \"cpu\" or \"cuda:N\", got '", device, "'"));
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> TrainConfig::ToKeyValues() const {
  std::map<std::string, std::string> kv;
  for (const Field& f : Fields()) kv[f.key] = f.get(*this);
  return kv;
}

absl::StatusOr<TrainConfig> TrainConfig::FromKeyValues(
    const std::map<std::string, std::string>& kv) {
  TrainConfig c;
  for (const Field& f : Fields()) {
    auto it = kv.find(f.key);
    for (const auto& [old_key, key] : kRenamedKeys) {
      if (it == kv.end() && f.key == std::string_view(key)) it = kv.find(old_key);
    }
    if (it == kv.end()) continue;  // Keys added later keep their defaults.
    if (!f.set(c, it->second)) {
      return absl::InvalidArgumentError(
          absl::StrCat("config field ", f.key, ": cannot parse '", it->second, "'"));
    }
  }
  return c;
}

const char* const* TrainConfig::ArchitectureKeys() {
  static const char* const kKeys[] = {"model.dim",
                                      "model.depth",
                                      "model.heads",
                                      "model.patch_size",
                                      "model.image_size",
                                      "model.in_channels",
                                      "model.mlp_ratio",
                                      "head.out_dim",
                                      "head.hidden_dim",
                                      "head.bottleneck_dim",
                                      "head.nlayers",
                                      "head.use_bn",
                                      "head.norm_last_layer",
                                      nullptr};
  return kKeys;
}

}  // namespace dino
