#include "spec/job_spec.h"

#include <cmath>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "spec/defaults.h"

namespace dino::spec {
namespace {

using dino::v1::JobSpec;

// "vit_tiny, vit_small, vit_base, custom": the names ValidateJobSpec accepts.
std::string PresetNames() {
  std::string names;
  for (const ModelPreset& preset : kModelPresets)
    absl::StrAppend(&names, std::string(preset.name), ", ");
  return absl::StrCat(names, std::string(kCustomModelPreset));
}

// Integral values print as integers ("1000000", not "1e+06").
std::string Num(double v) {
  if (std::isfinite(v) && std::floor(v) == v && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  return absl::StrCat(v);
}

// Collects the first violation.
class Checker {
 public:
  bool ok() const { return status_.ok(); }
  absl::Status status() const { return status_; }

  void Fail(std::string message) {
    if (status_.ok()) status_ = absl::InvalidArgumentError(std::move(message));
  }
  void AtLeast(absl::string_view field, double v, double lo) {
    if (!(v >= lo)) Fail(absl::StrCat(field, " must be >= ", Num(lo), ", got ", Num(v)));
  }
  void Positive(absl::string_view field, double v) {
    if (!(v > 0)) Fail(absl::StrCat(field, " must be > 0, got ", Num(v)));
  }
  void Range(absl::string_view field, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) {
      Fail(absl::StrCat(field, " must be in [", Num(lo), ", ", Num(hi), "], got ", Num(v)));
    }
  }
  void Probability(absl::string_view field, double v) { Range(field, v, 0.0, 1.0); }
  void MaxLength(absl::string_view field, absl::string_view v, size_t max) {
    if (v.size() > max) {
      Fail(absl::StrCat(field, " must be at most ", max, " bytes, got ", v.size()));
    }
  }

 private:
  absl::Status status_;
};

bool IsLabelKey(absl::string_view key) {
  if (key.empty() || key.size() > 63) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

void CheckModel(const JobSpec& spec, Checker* c) {
  const auto& m = spec.model();
  const std::string& preset = m.preset();
  if (FindModelPreset(preset) == nullptr && preset != kCustomModelPreset) {
    c->Fail(absl::StrCat("model.preset must be one of ", PresetNames(), ", got \"", preset, "\""));
  }
  c->Range("model.dim", m.dim(), 1, 8192);
  c->Range("model.depth", m.depth(), 1, 128);
  c->Range("model.heads", m.heads(), 1, 256);
  c->Range("model.patch_size", m.patch_size(), 1, 1024);
  c->Range("model.in_channels", m.in_channels(), 1, 16);
  c->Range("model.mlp_ratio", m.mlp_ratio(), 0.25, 64);
  c->Range("model.drop_path_rate", m.drop_path_rate(), 0, 0.99);
  if (c->ok() && preset == kCustomModelPreset && m.dim() % m.heads() != 0) {
    c->Fail(absl::StrCat("model.dim must be divisible by model.heads, got ", m.dim(), " and ",
                         m.heads()));
  }
  const auto& h = spec.head();
  c->Range("head.out_dim", h.out_dim(), 1, 1 << 20);
  c->Range("head.hidden_dim", h.hidden_dim(), 1, 65536);
  c->Range("head.bottleneck_dim", h.bottleneck_dim(), 1, 65536);
  c->Range("head.nlayers", h.nlayers(), 1, 16);
}

void CheckData(const JobSpec& spec, Checker* c) {
  const auto& d = spec.data();
  if (d.kind() == dino::v1::DATASET_KIND_UNSPECIFIED) {
    c->Fail(
        "data.kind must be set (DATASET_KIND_IDX, DATASET_KIND_IMAGE_FOLDER or "
        "DATASET_KIND_SYNTHETIC)");
  } else if (!dino::v1::DatasetKind_IsValid(d.kind())) {
    c->Fail(absl::StrCat("data.kind must be a known dataset kind, got ", d.kind()));
  }
  if (d.kind() != dino::v1::DATASET_KIND_SYNTHETIC && d.path().empty()) {
    c->Fail("data.path must be set unless data.kind is DATASET_KIND_SYNTHETIC");
  }
  c->MaxLength("data.path", d.path(), 4096);
  c->Range("data.max_short_side", d.max_short_side(), 0, 8192);
  c->Range("data.loader_threads", d.loader_threads(), 0, 256);
  c->Range("data.max_corrupt", d.max_corrupt(), 0, 1e9);
  c->Range("data.synthetic_images", d.synthetic_images(), 1, 100000000);
  c->Range("data.synthetic_classes", d.synthetic_classes(), 1, 100000);
  c->Range("data.synthetic_image_size", d.synthetic_image_size(), 1, 4096);
  if (d.kind() == dino::v1::DATASET_KIND_IDX && !d.eval_path().empty() &&
      (d.labels_path().empty() || d.eval_labels_path().empty())) {
    c->Fail(
        "data.labels_path and data.eval_labels_path must be set when data.eval_path is set "
        "for DATASET_KIND_IDX (k-NN needs labels)");
  }
}

void CheckAugmentation(const JobSpec& spec, Checker* c) {
  const auto& a = spec.augmentation();
  c->Range("augmentation.global_crop_size", a.global_crop_size(), 1, 4096);
  c->Range("augmentation.local_crop_size", a.local_crop_size(), 1, 4096);
  c->Range("augmentation.n_local_crops", a.n_local_crops(), 0, 64);
  c->Range("augmentation.global_crop_scale_min", a.global_crop_scale_min(), 1e-6, 1);
  c->Range("augmentation.global_crop_scale_max", a.global_crop_scale_max(), 1e-6, 1);
  c->Range("augmentation.local_crop_scale_min", a.local_crop_scale_min(), 1e-6, 1);
  c->Range("augmentation.local_crop_scale_max", a.local_crop_scale_max(), 1e-6, 1);
  c->Probability("augmentation.flip_prob", a.flip_prob());
  c->Probability("augmentation.color_jitter_prob", a.color_jitter_prob());
  c->Range("augmentation.brightness", a.brightness(), 0, 10);
  c->Range("augmentation.contrast", a.contrast(), 0, 10);
  c->Range("augmentation.saturation", a.saturation(), 0, 10);
  c->Range("augmentation.hue", a.hue(), 0, 0.5);
  c->Probability("augmentation.grayscale_prob", a.grayscale_prob());
  c->Probability("augmentation.blur_prob_global1", a.blur_prob_global1());
  c->Probability("augmentation.blur_prob_global2", a.blur_prob_global2());
  c->Probability("augmentation.blur_prob_local", a.blur_prob_local());
  c->Range("augmentation.blur_sigma_min", a.blur_sigma_min(), 0, 100);
  c->Range("augmentation.blur_sigma_max", a.blur_sigma_max(), 0, 100);
  c->Probability("augmentation.solarization_prob", a.solarization_prob());
  if (!c->ok()) return;
  if (a.n_local_crops() > 0 && a.local_crop_size() >= a.global_crop_size()) {
    c->Fail(absl::StrCat("augmentation.local_crop_size must be < augmentation.global_crop_size (",
                         a.global_crop_size(), "), got ", a.local_crop_size()));
  }
  if (a.global_crop_scale_min() > a.global_crop_scale_max()) {
    c->Fail(absl::StrCat(
        "augmentation.global_crop_scale_min must be <= augmentation.global_crop_scale_max (",
        Num(a.global_crop_scale_max()), "), got ", Num(a.global_crop_scale_min())));
  }
  if (a.local_crop_scale_min() > a.local_crop_scale_max()) {
    c->Fail(absl::StrCat(
        "augmentation.local_crop_scale_min must be <= augmentation.local_crop_scale_max (",
        Num(a.local_crop_scale_max()), "), got ", Num(a.local_crop_scale_min())));
  }
  if (a.blur_sigma_min() > a.blur_sigma_max()) {
    c->Fail(absl::StrCat("augmentation.blur_sigma_min must be <= augmentation.blur_sigma_max (",
                         Num(a.blur_sigma_max()), "), got ", Num(a.blur_sigma_min())));
  }
  if (a.global_crop_size() % spec.model().patch_size() != 0) {
    c->Fail(absl::StrCat("model.patch_size must divide augmentation.global_crop_size (",
                         a.global_crop_size(), "), got ", spec.model().patch_size()));
  }
}

void CheckOptimisation(const JobSpec& spec, Checker* c) {
  const auto& o = spec.optim();
  c->AtLeast("optim.epochs", o.epochs(), 1);
  c->Range("optim.epochs", o.epochs(), 1, 100000);
  c->AtLeast("optim.batch_size_per_rank", o.batch_size_per_rank(), 1);
  c->Range("optim.batch_size_per_rank", o.batch_size_per_rank(), 1, 65536);
  c->Range("optim.lr", o.lr(), 1e-12, 10);
  c->Range("optim.min_lr", o.min_lr(), 0, 10);
  c->Range("optim.warmup_epochs", o.warmup_epochs(), 0, 100000);
  c->Range("optim.weight_decay", o.weight_decay(), 0, 10);
  c->Range("optim.weight_decay_end", o.weight_decay_end(), 0, 10);
  c->Range("optim.clip_grad", o.clip_grad(), 0, 1e6);
  c->Range("optim.freeze_last_layer", o.freeze_last_layer(), 0, 100000);
  if (c->ok() && o.min_lr() > o.lr()) {
    c->Fail(absl::StrCat("optim.min_lr must be <= optim.lr (", Num(o.lr()), "), got ",
                         Num(o.min_lr())));
  }
  if (c->ok() && o.warmup_epochs() > o.epochs()) {
    c->Fail(absl::StrCat("optim.warmup_epochs must be <= optim.epochs (", o.epochs(), "), got ",
                         o.warmup_epochs()));
  }
  const auto& d = spec.dino();
  c->Range("dino.student_temp", d.student_temp(), 1e-4, 10);
  c->Range("dino.teacher_temp", d.teacher_temp(), 1e-4, 10);
  c->Range("dino.warmup_teacher_temp", d.warmup_teacher_temp(), 1e-4, 10);
  c->Range("dino.warmup_teacher_temp_epochs", d.warmup_teacher_temp_epochs(), 0, 100000);
  c->Range("dino.momentum_teacher", d.momentum_teacher(), 0, 1);
  c->Range("dino.center_momentum", d.center_momentum(), 0, 1);
}

void CheckResourcesAndPolicies(const JobSpec& spec, Checker* c) {
  const auto& r = spec.resources();
  if (!dino::v1::DeviceKind_IsValid(r.device()) ||
      r.device() == dino::v1::DEVICE_KIND_UNSPECIFIED) {
    c->Fail(absl::StrCat("resources.device must be DEVICE_KIND_CPU or DEVICE_KIND_CUDA, got ",
                         r.device()));
  }
  c->AtLeast("resources.world_size", r.world_size(), 1);
  const bool cuda = r.device() == dino::v1::DEVICE_KIND_CUDA;
  const int64_t max_world = cuda ? kMaxCudaWorldSize : kMaxCpuWorldSize;
  if (c->ok() && r.world_size() > max_world) {
    c->Fail(absl::StrCat("resources.world_size must be <= ", max_world, " for ",
                         cuda ? "DEVICE_KIND_CUDA" : "DEVICE_KIND_CPU", ", got ", r.world_size()));
  }
  c->Range("resources.threads_per_rank", r.threads_per_rank(), 0, 1024);
  if (c->ok() && spec.optim().bf16() && !cuda) {
    c->Fail("optim.bf16 must be false unless resources.device is DEVICE_KIND_CUDA");
  }
  const auto& k = spec.checkpoint();
  c->Range("checkpoint.every_steps", k.every_steps(), 0, 1e9);
  c->Range("checkpoint.keep_last", k.keep_last(), 1, 10000);
  c->Range("checkpoint.keep_best", k.keep_best(), 0, 10000);
  const auto& e = spec.eval();
  c->Range("eval.every_epochs", e.every_epochs(), 0, 100000);
  c->Range("eval.knn_k", e.knn_k(), 1, 10000);
  c->Range("eval.knn_temperature", e.knn_temperature(), 1e-6, 100);
  if (c->ok() && e.every_epochs() > 0 && spec.data().eval_path().empty() &&
      spec.data().kind() != dino::v1::DATASET_KIND_SYNTHETIC) {
    c->Fail("data.eval_path must be set when eval.every_epochs > 0");
  }
  const auto& col = spec.collapse();
  if (!dino::v1::CollapsePolicy_IsValid(col.policy()) ||
      col.policy() == dino::v1::COLLAPSE_POLICY_UNSPECIFIED) {
    c->Fail(
        absl::StrCat("collapse.policy must be COLLAPSE_POLICY_WARN or COLLAPSE_POLICY_FAIL, "
                     "got ",
                     col.policy()));
  }
  c->Range("collapse.min_kl", col.min_kl(), 0, 1e6);
  c->Range("collapse.min_batch_mean_entropy", col.min_batch_mean_entropy(), 0, 1e6);
  c->Range("collapse.consecutive_reports", col.consecutive_reports(), 1, 1000000);
  c->Range("collapse.ignore_before_epoch", col.ignore_before_epoch(), 0, 100000);
  c->Range("max_restarts", spec.max_restarts(), 0, 1000);
  c->Range("progress_every_steps", spec.progress_every_steps(), 1, 1000000);
  c->Range("progress_timeout_seconds", spec.progress_timeout_seconds(), 0, 604800);
}

// Each field may be in range while the product is not (a 65536-image batch of 4096-pixel crops):
// bound one rank's input batch and the model's parameter count.
void CheckSize(const JobSpec& spec, Checker* c) {
  if (!c->ok()) return;
  const auto& a = spec.augmentation();
  const double pixels = 2.0 * static_cast<double>(a.global_crop_size() * a.global_crop_size()) +
                        static_cast<double>(a.n_local_crops()) *
                            static_cast<double>(a.local_crop_size() * a.local_crop_size());
  const double values = static_cast<double>(spec.optim().batch_size_per_rank()) * pixels *
                        static_cast<double>(spec.model().in_channels());
  if (values > kMaxBatchValuesPerRank) {
    c->Fail(absl::StrCat(
        "optim.batch_size_per_rank x model.in_channels x (2 global + augmentation.n_local_crops "
        "local crops) is ",
        Num(values), " input values per rank, more than the limit ", Num(kMaxBatchValuesPerRank)));
  }
  const auto& m = spec.model();
  const auto& h = spec.head();
  const double dim = static_cast<double>(m.dim());
  const double hidden = static_cast<double>(h.hidden_dim());
  const double params = static_cast<double>(m.depth()) * (4.0 + 2.0 * m.mlp_ratio()) * dim * dim +
                        dim * hidden + static_cast<double>(h.nlayers()) * hidden * hidden +
                        hidden * static_cast<double>(h.bottleneck_dim()) +
                        static_cast<double>(h.bottleneck_dim()) * static_cast<double>(h.out_dim());
  if (c->ok() && params > kMaxModelParameters) {
    c->Fail(absl::StrCat("model and head have about ", Num(params),
                         " parameters, more than the limit ", Num(kMaxModelParameters)));
  }
}

}  // namespace

absl::Status ValidateJobSpec(const JobSpec& spec) {
  Checker c;
  c.MaxLength("name", spec.name(), 128);
  c.MaxLength("request_id", spec.request_id(), 128);
  c.Range("priority", spec.priority(), -1000, 1000);
  if (spec.labels_size() > 32)
    c.Fail(absl::StrCat("labels must have at most 32 entries, got ", spec.labels_size()));
  for (const auto& [key, value] : spec.labels()) {
    if (!IsLabelKey(key)) {
      c.Fail(absl::StrCat("labels key \"", key, "\" must be 1..63 bytes of [a-z0-9_.-/]"));
    }
    c.MaxLength(absl::StrCat("labels[", key, "]"), value, 256);
  }
  CheckModel(spec, &c);
  CheckData(spec, &c);
  CheckAugmentation(spec, &c);
  CheckOptimisation(spec, &c);
  CheckResourcesAndPolicies(spec, &c);
  CheckSize(spec, &c);
  return c.status();
}

}  // namespace dino::spec
