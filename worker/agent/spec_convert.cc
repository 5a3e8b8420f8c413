#include "worker/agent/spec_convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spec/data_paths.h"
#include "spec/job_spec.h"

namespace dino::agent {
namespace {

using dino::v1::DatasetKind;

absl::StatusOr<data::DatasetKind> KindFromSpec(DatasetKind kind) {
  switch (kind) {
    case dino::v1::DATASET_KIND_IDX:
      return data::DatasetKind::kIdx;
    case dino::v1::DATASET_KIND_IMAGE_FOLDER:
      return data::DatasetKind::kImageFolder;
    case dino::v1::DATASET_KIND_SYNTHETIC:
      return data::DatasetKind::kSynthetic;
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

absl::StatusOr<run::RunOptions> RunOptionsFromSpec(const dino::v1::JobSpec& given,
                                                   const LocalResources& local) {
  // The coordinator sends the spec with every default applied; applying them again changes
  // nothing there, and gives a partial spec (tests, dino-train's callers) the same defaults.
  dino::v1::JobSpec spec = given;
  spec::ApplyJobSpecDefaults(&spec);
  run::RunOptions o;
  TrainConfig& t = o.train;

  const auto& m = spec.model();
  t.model.preset = m.preset();
  t.model.dim = m.dim();
  t.model.depth = m.depth();
  t.model.heads = m.heads();
  t.model.patch_size = m.patch_size();
  t.model.in_channels = m.in_channels();
  t.model.mlp_ratio = m.mlp_ratio();
  t.model.drop_path_rate = m.drop_path_rate();

  const auto& h = spec.head();
  t.head.out_dim = h.out_dim();
  t.head.hidden_dim = h.hidden_dim();
  t.head.bottleneck_dim = h.bottleneck_dim();
  t.head.nlayers = h.nlayers();
  t.head.use_bn = h.use_bn();
  t.head.norm_last_layer = h.norm_last_layer();

  const auto& op = spec.optim();
  t.optim.epochs = op.epochs();
  t.optim.batch_size_per_rank = op.batch_size_per_rank();
  t.optim.lr = op.lr();
  t.optim.min_lr = op.min_lr();
  t.optim.warmup_epochs = op.warmup_epochs();
  t.optim.weight_decay = op.weight_decay();
  t.optim.weight_decay_end = op.weight_decay_end();
  t.optim.clip_grad = op.clip_grad();
  t.optim.freeze_last_layer = op.freeze_last_layer();
  t.bf16 = op.bf16();

  const auto& d = spec.dino();
  t.dino.student_temp = d.student_temp();
  t.dino.teacher_temp = d.teacher_temp();
  t.dino.warmup_teacher_temp = d.warmup_teacher_temp();
  t.dino.warmup_teacher_temp_epochs = d.warmup_teacher_temp_epochs();
  t.dino.momentum_teacher = d.momentum_teacher();
  t.dino.center_momentum = d.center_momentum();

  // Augmentation: the crop sizes live in t.crops (TrainingRun sets the views' sizes from them);
  // the views take the spec's scales and probabilities.
  const auto& a = spec.augmentation();
  t.crops.global_crop_size = a.global_crop_size();
  t.crops.local_crop_size = a.local_crop_size();
  t.crops.n_local_crops = a.n_local_crops();
  data::AugmentOptions& g = o.augment;
  g.global1.crop_size = g.global2.crop_size = a.global_crop_size();
  g.local.crop_size = a.local_crop_size();
  g.n_local_crops = a.n_local_crops();
  for (data::ViewOptions* v : {&g.global1, &g.global2}) {
    v->crop_scale_min = a.global_crop_scale_min();
    v->crop_scale_max = a.global_crop_scale_max();
  }
  g.local.crop_scale_min = a.local_crop_scale_min();
  g.local.crop_scale_max = a.local_crop_scale_max();
  for (data::ViewOptions* v : {&g.global1, &g.global2, &g.local}) {
    v->flip_prob = a.flip_prob();
    v->color_jitter_prob = a.color_jitter_prob();
    v->grayscale_prob = a.grayscale_prob();
  }
  g.global1.blur_prob = a.blur_prob_global1();
  g.global2.blur_prob = a.blur_prob_global2();
  g.local.blur_prob = a.blur_prob_local();
  g.global2.solarization_prob = a.solarization_prob();
  g.brightness = a.brightness();
  g.contrast = a.contrast();
  g.saturation = a.saturation();
  g.hue = a.hue();
  g.blur_sigma_min = a.blur_sigma_min();
  g.blur_sigma_max = a.blur_sigma_max();

  // Data.
  const auto& dat = spec.data();
  DINO_ASSIGN_OR_RETURN(o.data.kind, KindFromSpec(dat.kind()));
  o.data.path = dat.path();
  o.data.labels_path = dat.labels_path();
  o.data.image_folder.max_short_side = dat.max_short_side();
  o.data.image_folder.max_corrupt = dat.max_corrupt();
  o.data.image_folder.roots = local.data_roots;  // The eval splits below copy it.
  o.data.synthetic.size = dat.synthetic_images();
  o.data.synthetic.num_classes = dat.synthetic_classes();
  o.data.synthetic.resolution = dat.synthetic_image_size();
  o.data.synthetic.seed = spec.seed();
  o.loader_threads = dat.loader_threads();
  if (o.data.kind == data::DatasetKind::kSynthetic) {
    // A synthetic job evaluates on a held-out synthetic split drawn with another seed.
    data::DatasetSpec test = o.data;
    test.synthetic.seed = spec.seed() + 1000003;
    test.synthetic.size = std::max<int64_t>(64, o.data.synthetic.size / 4);
    o.eval_train = o.data;
    o.eval_test = test;
  } else if (!dat.eval_path().empty()) {
    o.eval_train = o.data;
    data::DatasetSpec test = o.data;
    test.path = dat.eval_path();
    test.labels_path = dat.eval_labels_path();
    o.eval_test = test;
  }

  // Resources, checkpoints, evaluation.
  t.device = local.device;
  t.threads =
      spec.resources().threads_per_rank() > 0 ? spec.resources().threads_per_rank() : local.threads;
  t.seed = spec.seed();
  o.checkpoint_every_steps = spec.checkpoint().every_steps();
  o.keep_checkpoints = spec.checkpoint().keep_last();
  o.eval_every_epochs = spec.eval().every_epochs();
  o.knn_k = spec.eval().knn_k();
  o.knn_temperature = spec.eval().knn_temperature();
  o.progress_every_steps = spec.progress_every_steps();
  o.work_dir = local.work_dir;

  TrainConfig check = t;
  DINO_RETURN_IF_ERROR(check.ApplyPreset());
  check.steps_per_epoch = 1;
  check.model.image_size = t.crops.global_crop_size;
  DINO_RETURN_IF_ERROR(check.Validate());
  return o;
}

}  // namespace dino::agent
