// ApplyJobSpecDefaults: every unset field of a JobSpec from the one table of spec/defaults.h.
#include <string>
#include <string_view>

#include "spec/defaults.h"
#include "spec/job_spec.h"

namespace dino::spec {
namespace {

using dino::v1::JobSpec;

// Sets `field` of the message `msg` to the same-named member of `defaults` when it is unset: the
// names in the table and in the proto cannot differ.
#define DINO_DEFAULT(msg, defaults, field) \
  if (!(msg)->has_##field()) (msg)->set_##field(ProtoValue((defaults).field))

template <typename T>
T ProtoValue(T value) {
  return value;
}
std::string ProtoValue(std::string_view value) { return std::string(value); }

// The enum value the table names; a name the proto lacks is a programming error caught by the
// defaults test, and falls back to the enum's first value.
template <typename Enum>
Enum EnumDefault(std::string_view name, bool (*parse)(const std::string&, Enum*)) {
  Enum value{};
  parse(std::string(name), &value);
  return value;
}

}  // namespace

void ApplyJobSpecDefaults(JobSpec* spec) {
  const JobSpecDefaults& table = kJobSpecDefaults;
  DINO_DEFAULT(spec, table, name);
  DINO_DEFAULT(spec, table, priority);
  DINO_DEFAULT(spec, table, request_id);
  DINO_DEFAULT(spec, table, max_restarts);
  DINO_DEFAULT(spec, table, seed);
  DINO_DEFAULT(spec, table, progress_every_steps);
  DINO_DEFAULT(spec, table, progress_timeout_seconds);

  auto* m = spec->mutable_model();
  DINO_DEFAULT(m, table.model, preset);
  if (m->preset() != kCustomModelPreset) {  // A preset decides the shape.
    const ModelPreset* preset = FindModelPreset(m->preset());
    if (preset == nullptr) preset = &kDefaultModelPreset;  // ValidateJobSpec rejects the name.
    m->set_dim(preset->dim);
    m->set_depth(preset->depth);
    m->set_heads(preset->heads);
  }
  DINO_DEFAULT(m, table.model, dim);
  DINO_DEFAULT(m, table.model, depth);
  DINO_DEFAULT(m, table.model, heads);
  DINO_DEFAULT(m, table.model, patch_size);
  DINO_DEFAULT(m, table.model, in_channels);
  DINO_DEFAULT(m, table.model, mlp_ratio);
  DINO_DEFAULT(m, table.model, drop_path_rate);

  auto* h = spec->mutable_head();
  DINO_DEFAULT(h, table.head, out_dim);
  DINO_DEFAULT(h, table.head, hidden_dim);
  DINO_DEFAULT(h, table.head, bottleneck_dim);
  DINO_DEFAULT(h, table.head, nlayers);
  DINO_DEFAULT(h, table.head, use_bn);
  DINO_DEFAULT(h, table.head, norm_last_layer);

  auto* d = spec->mutable_data();
  DINO_DEFAULT(d, table.data, path);
  DINO_DEFAULT(d, table.data, labels_path);
  DINO_DEFAULT(d, table.data, eval_path);
  DINO_DEFAULT(d, table.data, eval_labels_path);
  DINO_DEFAULT(d, table.data, max_short_side);
  DINO_DEFAULT(d, table.data, loader_threads);
  DINO_DEFAULT(d, table.data, max_corrupt);
  DINO_DEFAULT(d, table.data, synthetic_images);
  DINO_DEFAULT(d, table.data, synthetic_classes);
  DINO_DEFAULT(d, table.data, synthetic_image_size);

  auto* a = spec->mutable_augmentation();
  DINO_DEFAULT(a, table.augmentation, global_crop_size);
  DINO_DEFAULT(a, table.augmentation, local_crop_size);
  DINO_DEFAULT(a, table.augmentation, n_local_crops);
  DINO_DEFAULT(a, table.augmentation, global_crop_scale_min);
  DINO_DEFAULT(a, table.augmentation, global_crop_scale_max);
  DINO_DEFAULT(a, table.augmentation, local_crop_scale_min);
  DINO_DEFAULT(a, table.augmentation, local_crop_scale_max);
  DINO_DEFAULT(a, table.augmentation, flip_prob);
  DINO_DEFAULT(a, table.augmentation, color_jitter_prob);
  DINO_DEFAULT(a, table.augmentation, brightness);
  DINO_DEFAULT(a, table.augmentation, contrast);
  DINO_DEFAULT(a, table.augmentation, saturation);
  DINO_DEFAULT(a, table.augmentation, hue);
  DINO_DEFAULT(a, table.augmentation, grayscale_prob);
  DINO_DEFAULT(a, table.augmentation, blur_prob_global1);
  DINO_DEFAULT(a, table.augmentation, blur_prob_global2);
  DINO_DEFAULT(a, table.augmentation, blur_prob_local);
  DINO_DEFAULT(a, table.augmentation, blur_sigma_min);
  DINO_DEFAULT(a, table.augmentation, blur_sigma_max);
  DINO_DEFAULT(a, table.augmentation, solarization_prob);

  auto* o = spec->mutable_optim();
  DINO_DEFAULT(o, table.optim, epochs);
  DINO_DEFAULT(o, table.optim, batch_size_per_rank);
  DINO_DEFAULT(o, table.optim, lr);
  DINO_DEFAULT(o, table.optim, min_lr);
  DINO_DEFAULT(o, table.optim, warmup_epochs);
  DINO_DEFAULT(o, table.optim, weight_decay);
  DINO_DEFAULT(o, table.optim, weight_decay_end);
  DINO_DEFAULT(o, table.optim, clip_grad);
  DINO_DEFAULT(o, table.optim, freeze_last_layer);
  DINO_DEFAULT(o, table.optim, bf16);

  auto* dn = spec->mutable_dino();
  DINO_DEFAULT(dn, table.dino, student_temp);
  DINO_DEFAULT(dn, table.dino, teacher_temp);
  DINO_DEFAULT(dn, table.dino, warmup_teacher_temp);
  DINO_DEFAULT(dn, table.dino, warmup_teacher_temp_epochs);
  DINO_DEFAULT(dn, table.dino, momentum_teacher);
  DINO_DEFAULT(dn, table.dino, center_momentum);

  // Enums have no presence: their UNSPECIFIED value stands for the default.
  auto* r = spec->mutable_resources();
  DINO_DEFAULT(r, table.resources, world_size);
  if (r->device() == dino::v1::DEVICE_KIND_UNSPECIFIED) {
    r->set_device(
        EnumDefault<dino::v1::DeviceKind>(table.resources.device, dino::v1::DeviceKind_Parse));
  }
  DINO_DEFAULT(r, table.resources, threads_per_rank);

  auto* k = spec->mutable_checkpoint();
  DINO_DEFAULT(k, table.checkpoint, every_steps);
  DINO_DEFAULT(k, table.checkpoint, keep_last);
  DINO_DEFAULT(k, table.checkpoint, keep_best);

  auto* e = spec->mutable_eval();
  DINO_DEFAULT(e, table.eval, every_epochs);
  DINO_DEFAULT(e, table.eval, knn_k);
  DINO_DEFAULT(e, table.eval, knn_temperature);

  auto* col = spec->mutable_collapse();
  if (col->policy() == dino::v1::COLLAPSE_POLICY_UNSPECIFIED) {
    col->set_policy(EnumDefault<dino::v1::CollapsePolicy>(table.collapse.policy,
                                                          dino::v1::CollapsePolicy_Parse));
  }
  DINO_DEFAULT(col, table.collapse, min_kl);
  DINO_DEFAULT(col, table.collapse, min_batch_mean_entropy);
  DINO_DEFAULT(col, table.collapse, consecutive_reports);
  // Not a constant: collapse detection waits out the spec's own warmup.
  if (!col->has_ignore_before_epoch()) col->set_ignore_before_epoch(o->warmup_epochs());
}

#undef DINO_DEFAULT

}  // namespace dino::spec
