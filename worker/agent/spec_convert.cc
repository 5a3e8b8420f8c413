#include "worker/agent/spec_convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spec/data_paths.h"

namespace dino::agent {
namespace {

using dino::v1::DatasetKind;

// Copies an optional proto field into `out` when it is set.
#define DINO_COPY_IF_SET(msg, field, out) \
  if ((msg).has_##field()) (out) = (msg).field()

absl::StatusOr<std::string> KindName(DatasetKind kind) {
  switch (kind) {
    case dino::v1::DATASET_KIND_IDX:
      return std::string("idx");
    case dino::v1::DATASET_KIND_IMAGE_FOLDER:
      return std::string("image_folder");
    case dino::v1::DATASET_KIND_SYNTHETIC:
      return std::string("synthetic");
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("data.kind must be IDX, IMAGE_FOLDER or SYNTHETIC, got ",
                       dino::v1::DatasetKind_Name(kind)));
  }
}

}  // namespace

absl::Status CheckDataPaths(const dino::v1::JobSpec& spec, const PathConfinement& roots) {
  return spec::CheckSpecDataPaths(spec, roots);
}

absl::StatusOr<run::RunOptions> RunOptionsFromSpec(const dino::v1::JobSpec& spec,
                                                   const LocalResources& local) {
  run::RunOptions o;
  TrainConfig& t = o.train;

  const auto& m = spec.model();
  DINO_COPY_IF_SET(m, preset, t.model.preset);
  DINO_COPY_IF_SET(m, dim, t.model.dim);
  DINO_COPY_IF_SET(m, depth, t.model.depth);
  DINO_COPY_IF_SET(m, heads, t.model.heads);
  DINO_COPY_IF_SET(m, patch_size, t.model.patch_size);
  DINO_COPY_IF_SET(m, in_channels, t.model.in_channels);
  DINO_COPY_IF_SET(m, mlp_ratio, t.model.mlp_ratio);
  DINO_COPY_IF_SET(m, drop_path_rate, t.model.drop_path_rate);

  const auto& h = spec.head();
  DINO_COPY_IF_SET(h, out_dim, t.head.out_dim);
  DINO_COPY_IF_SET(h, hidden_dim, t.head.hidden);
  DINO_COPY_IF_SET(h, bottleneck_dim, t.head.bottleneck);
  DINO_COPY_IF_SET(h, nlayers, t.head.nlayers);
  DINO_COPY_IF_SET(h, use_bn, t.head.use_bn);
  DINO_COPY_IF_SET(h, norm_last_layer, t.head.norm_last_layer);

  const auto& op = spec.optim();
  DINO_COPY_IF_SET(op, epochs, t.optim.epochs);
  DINO_COPY_IF_SET(op, batch_size_per_rank, t.optim.batch_size_per_rank);
  DINO_COPY_IF_SET(op, lr, t.optim.lr);
  DINO_COPY_IF_SET(op, min_lr, t.optim.min_lr);
  DINO_COPY_IF_SET(op, warmup_epochs, t.optim.warmup_epochs);
  DINO_COPY_IF_SET(op, weight_decay, t.optim.weight_decay);
  DINO_COPY_IF_SET(op, weight_decay_end, t.optim.weight_decay_end);
  DINO_COPY_IF_SET(op, clip_grad, t.optim.clip_grad);
  DINO_COPY_IF_SET(op, freeze_last_layer, t.optim.freeze_last_layer);
  DINO_COPY_IF_SET(op, bf16, t.bf16);

  const auto& d = spec.dino();
  DINO_COPY_IF_SET(d, student_temp, t.dino.student_temp);
  DINO_COPY_IF_SET(d, teacher_temp, t.dino.teacher_temp);
  DINO_COPY_IF_SET(d, warmup_teacher_temp, t.dino.warmup_teacher_temp);
  DINO_COPY_IF_SET(d, warmup_teacher_temp_epochs, t.dino.warmup_teacher_temp_epochs);
  DINO_COPY_IF_SET(d, momentum_teacher, t.dino.momentum_teacher);
  DINO_COPY_IF_SET(d, center_momentum, t.dino.center_momentum);

  // Augmentation: sizes first, then the defaults scaled to them, then explicit overrides.
  const auto& a = spec.augmentation();
  DINO_COPY_IF_SET(a, global_crop_size, t.crops.global_crop_size);
  DINO_COPY_IF_SET(a, local_crop_size, t.crops.local_crop_size);
  DINO_COPY_IF_SET(a, n_local_crops, t.crops.n_local_crops);
  if (t.crops.global_crop_size < 1 || t.crops.n_local_crops < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("augmentation.global_crop_size must be >= 1 and n_local_crops >= 0, got ",
                     t.crops.global_crop_size, " and ", t.crops.n_local_crops));
  }
  data::AugmentOptions& g = o.augment;
  g = data::AugmentOptions::ForResolution(t.crops.global_crop_size, t.crops.n_local_crops);
  DINO_COPY_IF_SET(a, global_crop_scale_min, g.global1.scale_min);
  DINO_COPY_IF_SET(a, global_crop_scale_max, g.global1.scale_max);
  g.global2.scale_min = g.global1.scale_min;
  g.global2.scale_max = g.global1.scale_max;
  DINO_COPY_IF_SET(a, local_crop_scale_min, g.local.scale_min);
  DINO_COPY_IF_SET(a, local_crop_scale_max, g.local.scale_max);
  for (data::ViewOptions* v : {&g.global1, &g.global2, &g.local}) {
    DINO_COPY_IF_SET(a, flip_prob, v->flip_p);
    DINO_COPY_IF_SET(a, color_jitter_prob, v->jitter_p);
    DINO_COPY_IF_SET(a, grayscale_prob, v->grayscale_p);
  }
  DINO_COPY_IF_SET(a, blur_prob_global1, g.global1.blur_p);
  DINO_COPY_IF_SET(a, blur_prob_global2, g.global2.blur_p);
  DINO_COPY_IF_SET(a, blur_prob_local, g.local.blur_p);
  DINO_COPY_IF_SET(a, solarization_prob, g.global2.solarize_p);
  DINO_COPY_IF_SET(a, brightness, g.brightness);
  DINO_COPY_IF_SET(a, contrast, g.contrast);
  DINO_COPY_IF_SET(a, saturation, g.saturation);
  DINO_COPY_IF_SET(a, hue, g.hue);
  DINO_COPY_IF_SET(a, blur_sigma_min, g.blur_sigma_min);
  DINO_COPY_IF_SET(a, blur_sigma_max, g.blur_sigma_max);

  // Data.
  const auto& dat = spec.data();
  DINO_ASSIGN_OR_RETURN(o.data.kind, KindName(dat.kind()));
  o.data.path = dat.path();
  o.data.labels_path = dat.labels_path();
  DINO_COPY_IF_SET(dat, max_short_side, o.data.image_folder.max_short_side);
  DINO_COPY_IF_SET(dat, max_corrupt, o.data.image_folder.max_corrupt);
  o.data.image_folder.roots = local.data_roots;  // The eval splits below copy it.
  DINO_COPY_IF_SET(dat, synthetic_images, o.data.synthetic.size);
  DINO_COPY_IF_SET(dat, synthetic_classes, o.data.synthetic.num_classes);
  DINO_COPY_IF_SET(dat, synthetic_image_size, o.data.synthetic.resolution);
  o.data.synthetic.seed = spec.seed();
  o.loader_threads = dat.has_loader_threads() ? dat.loader_threads() : 2;
  if (o.data.kind == "synthetic") {
    // A synthetic job evaluates on a held-out synthetic split drawn with another seed.
    data::DatasetSpec test = o.data;
    test.synthetic.seed = spec.seed() + 1000003;
    test.synthetic.size = std::max<int64_t>(64, o.data.synthetic.size / 4);
    o.eval_train = o.data;
    o.eval_test = test;
  } else if (dat.has_eval_path() && !dat.eval_path().empty()) {
    o.eval_train = o.data;
    data::DatasetSpec test = o.data;
    test.path = dat.eval_path();
    test.labels_path = dat.eval_labels_path();
    o.eval_test = test;
  }

  // Resources, checkpoints, evaluation.
  t.device = local.device;
  t.threads = spec.resources().has_threads_per_rank() && spec.resources().threads_per_rank() > 0
                  ? spec.resources().threads_per_rank()
                  : local.threads;
  t.seed = spec.seed();
  DINO_COPY_IF_SET(spec.checkpoint(), every_steps, o.checkpoint_every_steps);
  DINO_COPY_IF_SET(spec.checkpoint(), keep_last, o.keep_checkpoints);
  DINO_COPY_IF_SET(spec.eval(), every_epochs, o.eval_every_epochs);
  DINO_COPY_IF_SET(spec.eval(), knn_k, o.knn_k);
  DINO_COPY_IF_SET(spec.eval(), knn_temperature, o.knn_temperature);
  DINO_COPY_IF_SET(spec, progress_every_steps, o.progress_every_steps);
  o.work_dir = local.work_dir;

  TrainConfig check = t;
  DINO_RETURN_IF_ERROR(check.ApplyPreset());
  check.steps_per_epoch = 1;
  check.model.image_size = t.crops.global_crop_size;
  DINO_RETURN_IF_ERROR(check.Validate());
  return o;
}

#undef DINO_COPY_IF_SET

}  // namespace dino::agent
