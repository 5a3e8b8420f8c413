// The job spec's defaults reach training unchanged: converting a spec whose fields are unset gives
// what converting the same spec with the coordinator's defaults applied gives, and both are what a
// TrainConfig / AugmentOptions left alone holds. Every field is compared: the structured bindings
// below stop compiling when a struct gains or loses a member, so a new field cannot be missed.
#include <gtest/gtest.h>

#include <string>

#include "spec/job_spec.h"
#include "worker/agent/spec_convert.h"

namespace dino::agent {
namespace {

void ExpectSameView(const data::ViewOptions& a, const data::ViewOptions& b, const std::string& at) {
  const auto& [crop_size, crop_scale_min, crop_scale_max, flip_prob, color_jitter_prob,
               grayscale_prob, blur_prob, solarization_prob] = a;
  EXPECT_EQ(crop_size, b.crop_size) << at;
  EXPECT_EQ(crop_scale_min, b.crop_scale_min) << at;
  EXPECT_EQ(crop_scale_max, b.crop_scale_max) << at;
  EXPECT_EQ(flip_prob, b.flip_prob) << at;
  EXPECT_EQ(color_jitter_prob, b.color_jitter_prob) << at;
  EXPECT_EQ(grayscale_prob, b.grayscale_prob) << at;
  EXPECT_EQ(blur_prob, b.blur_prob) << at;
  EXPECT_EQ(solarization_prob, b.solarization_prob) << at;
}

void ExpectSameAugment(const data::AugmentOptions& a, const data::AugmentOptions& b) {
  const auto& [global1, global2, local, n_local_crops, ratio_min, ratio_max, interpolation,
               brightness, contrast, saturation, hue, blur_sigma_min, blur_sigma_max] = a;
  ExpectSameView(global1, b.global1, "augment.global1");
  ExpectSameView(global2, b.global2, "augment.global2");
  ExpectSameView(local, b.local, "augment.local");
  EXPECT_EQ(n_local_crops, b.n_local_crops);
  EXPECT_EQ(ratio_min, b.ratio_min);
  EXPECT_EQ(ratio_max, b.ratio_max);
  EXPECT_EQ(interpolation, b.interpolation);
  EXPECT_EQ(brightness, b.brightness);
  EXPECT_EQ(contrast, b.contrast);
  EXPECT_EQ(saturation, b.saturation);
  EXPECT_EQ(hue, b.hue);
  EXPECT_EQ(blur_sigma_min, b.blur_sigma_min);
  EXPECT_EQ(blur_sigma_max, b.blur_sigma_max);
}

void ExpectSameTrainConfig(const TrainConfig& a, const TrainConfig& b) {
  const auto& [model, head, dino, optim, crops, steps_per_epoch, world_size, device, bf16, threads,
               micro_batches, seed] = a;
  {
    const auto& [preset, dim, depth, heads, patch_size, image_size, in_channels, mlp_ratio,
                 drop_path_rate] = model;
    EXPECT_EQ(preset, b.model.preset);
    EXPECT_EQ(dim, b.model.dim);
    EXPECT_EQ(depth, b.model.depth);
    EXPECT_EQ(heads, b.model.heads);
    EXPECT_EQ(patch_size, b.model.patch_size);
    EXPECT_EQ(image_size, b.model.image_size);
    EXPECT_EQ(in_channels, b.model.in_channels);
    EXPECT_EQ(mlp_ratio, b.model.mlp_ratio);
    EXPECT_EQ(drop_path_rate, b.model.drop_path_rate);
  }
  {
    const auto& [out_dim, hidden_dim, bottleneck_dim, nlayers, use_bn, norm_last_layer] = head;
    EXPECT_EQ(out_dim, b.head.out_dim);
    EXPECT_EQ(hidden_dim, b.head.hidden_dim);
    EXPECT_EQ(bottleneck_dim, b.head.bottleneck_dim);
    EXPECT_EQ(nlayers, b.head.nlayers);
    EXPECT_EQ(use_bn, b.head.use_bn);
    EXPECT_EQ(norm_last_layer, b.head.norm_last_layer);
  }
  {
    const auto& [student_temp, teacher_temp, warmup_teacher_temp, warmup_teacher_temp_epochs,
                 center_momentum, momentum_teacher] = dino;
    EXPECT_EQ(student_temp, b.dino.student_temp);
    EXPECT_EQ(teacher_temp, b.dino.teacher_temp);
    EXPECT_EQ(warmup_teacher_temp, b.dino.warmup_teacher_temp);
    EXPECT_EQ(warmup_teacher_temp_epochs, b.dino.warmup_teacher_temp_epochs);
    EXPECT_EQ(center_momentum, b.dino.center_momentum);
    EXPECT_EQ(momentum_teacher, b.dino.momentum_teacher);
  }
  {
    const auto& [epochs, batch_size_per_rank, lr, min_lr, warmup_epochs, weight_decay,
                 weight_decay_end, clip_grad, freeze_last_layer] = optim;
    EXPECT_EQ(epochs, b.optim.epochs);
    EXPECT_EQ(batch_size_per_rank, b.optim.batch_size_per_rank);
    EXPECT_EQ(lr, b.optim.lr);
    EXPECT_EQ(min_lr, b.optim.min_lr);
    EXPECT_EQ(warmup_epochs, b.optim.warmup_epochs);
    EXPECT_EQ(weight_decay, b.optim.weight_decay);
    EXPECT_EQ(weight_decay_end, b.optim.weight_decay_end);
    EXPECT_EQ(clip_grad, b.optim.clip_grad);
    EXPECT_EQ(freeze_last_layer, b.optim.freeze_last_layer);
  }
  {
    const auto& [global_crop_size, local_crop_size, n_local_crops] = crops;
    EXPECT_EQ(global_crop_size, b.crops.global_crop_size);
    EXPECT_EQ(local_crop_size, b.crops.local_crop_size);
    EXPECT_EQ(n_local_crops, b.crops.n_local_crops);
  }
  EXPECT_EQ(steps_per_epoch, b.steps_per_epoch);
  EXPECT_EQ(world_size, b.world_size);
  EXPECT_EQ(device, b.device);
  EXPECT_EQ(bf16, b.bf16);
  EXPECT_EQ(threads, b.threads);
  EXPECT_EQ(micro_batches, b.micro_batches);
  EXPECT_EQ(seed, b.seed);
}

// The settings of RunOptions that come from the spec.
void ExpectSameRunSettings(const run::RunOptions& a, const run::RunOptions& b) {
  EXPECT_EQ(a.loader_threads, b.loader_threads);
  EXPECT_EQ(a.eval_every_epochs, b.eval_every_epochs);
  EXPECT_EQ(a.knn_k, b.knn_k);
  EXPECT_EQ(a.knn_temperature, b.knn_temperature);
  EXPECT_EQ(a.checkpoint_every_steps, b.checkpoint_every_steps);
  EXPECT_EQ(a.progress_every_steps, b.progress_every_steps);
  EXPECT_EQ(a.keep_checkpoints, b.keep_checkpoints);
  EXPECT_EQ(a.data.kind, b.data.kind);
  EXPECT_EQ(a.data.image_folder.max_short_side, b.data.image_folder.max_short_side);
  EXPECT_EQ(a.data.image_folder.max_corrupt, b.data.image_folder.max_corrupt);
  EXPECT_EQ(a.data.synthetic.size, b.data.synthetic.size);
  EXPECT_EQ(a.data.synthetic.num_classes, b.data.synthetic.num_classes);
  EXPECT_EQ(a.data.synthetic.resolution, b.data.synthetic.resolution);
  EXPECT_EQ(a.data.synthetic.seed, b.data.synthetic.seed);
}

// Empty but for the one field without a default.
dino::v1::JobSpec EmptySpec() {
  dino::v1::JobSpec spec;
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_SYNTHETIC);
  return spec;
}

TEST(SpecConvertDefaultsTest, EmptySpecConvertsAsTheSpecWithDefaultsApplied) {
  dino::v1::JobSpec defaulted = EmptySpec();
  spec::ApplyJobSpecDefaults(&defaulted);
  ASSERT_TRUE(spec::ValidateJobSpec(defaulted).ok()) << spec::ValidateJobSpec(defaulted);

  absl::StatusOr<run::RunOptions> empty = RunOptionsFromSpec(EmptySpec(), {});
  absl::StatusOr<run::RunOptions> full = RunOptionsFromSpec(defaulted, {});
  ASSERT_TRUE(empty.ok()) << empty.status();
  ASSERT_TRUE(full.ok()) << full.status();
  ExpectSameTrainConfig(empty->train, full->train);
  ExpectSameAugment(empty->augment, full->augment);
  ExpectSameRunSettings(*empty, *full);
}

TEST(SpecConvertDefaultsTest, StructsLeftAloneHoldTheSpecDefaults) {
  absl::StatusOr<run::RunOptions> converted = RunOptionsFromSpec(EmptySpec(), {});
  ASSERT_TRUE(converted.ok()) << converted.status();
  ExpectSameTrainConfig(TrainConfig(), converted->train);
  ExpectSameAugment(data::AugmentOptions(), converted->augment);

  run::RunOptions plain;
  plain.data.kind = data::DatasetKind::kSynthetic;
  plain.loader_threads = converted->loader_threads;  // RunOptions' 0 means one per core.
  ExpectSameRunSettings(plain, *converted);
}

}  // namespace
}  // namespace dino::agent
