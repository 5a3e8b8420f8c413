#include "spec/job_spec.h"

#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/spec/tiny_spec.h"

namespace dino::spec {
namespace {

using dino::v1::JobSpec;

TEST(JobSpecTest, DefaultsAreDinos) {
  JobSpec spec;
  ApplyJobSpecDefaults(&spec);
  EXPECT_EQ(spec.model().preset(), "vit_small");
  EXPECT_EQ(spec.model().dim(), 384);
  EXPECT_EQ(spec.model().patch_size(), 16);
  EXPECT_EQ(spec.head().out_dim(), 65536);
  EXPECT_TRUE(spec.head().norm_last_layer());
  EXPECT_DOUBLE_EQ(spec.optim().lr(), 0.0005);
  EXPECT_DOUBLE_EQ(spec.optim().weight_decay_end(), 0.4);
  EXPECT_DOUBLE_EQ(spec.dino().teacher_temp(), 0.07);
  EXPECT_DOUBLE_EQ(spec.dino().momentum_teacher(), 0.996);
  EXPECT_DOUBLE_EQ(spec.augmentation().global_crop_scale_min(), 0.4);
  EXPECT_EQ(spec.augmentation().n_local_crops(), 8);
  EXPECT_EQ(spec.resources().device(), dino::v1::DEVICE_KIND_CPU);
  EXPECT_EQ(spec.max_restarts(), 3);
  EXPECT_EQ(spec.collapse().policy(), dino::v1::COLLAPSE_POLICY_WARN);
  EXPECT_EQ(spec.collapse().ignore_before_epoch(), 10);
}

TEST(JobSpecTest, ExplicitZeroIsKeptNotDefaulted) {
  JobSpec spec = testing::TinySpec();
  spec.mutable_optim()->set_clip_grad(0);
  spec.mutable_augmentation()->set_n_local_crops(0);
  ApplyJobSpecDefaults(&spec);
  EXPECT_EQ(spec.optim().clip_grad(), 0);
  EXPECT_EQ(spec.augmentation().n_local_crops(), 0);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

TEST(JobSpecTest, PresetDecidesTheShape) {
  JobSpec spec = testing::TinySpec();
  spec.mutable_model()->set_preset("vit_tiny");
  ApplyJobSpecDefaults(&spec);
  EXPECT_EQ(spec.model().dim(), 192);
  EXPECT_EQ(spec.model().heads(), 3);
}

struct BadSpec {
  std::string name;
  std::function<void(JobSpec*)> mutate;
  std::string message;
};

TEST(JobSpecTest, BadSpecsNameTheFieldAndTheRule) {
  const std::vector<BadSpec> cases = {
      {"batch", [](JobSpec* s) { s->mutable_optim()->set_batch_size_per_rank(0); },
       "optim.batch_size_per_rank must be >= 1, got 0"},
      {"epochs", [](JobSpec* s) { s->mutable_optim()->set_epochs(-3); },
       "optim.epochs must be >= 1, got -3"},
      {"no kind", [](JobSpec* s) { s->mutable_data()->clear_kind(); }, "data.kind must be set"},
      {"no path", [](JobSpec* s) { s->mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX); },
       "data.path must be set unless data.kind is DATASET_KIND_SYNTHETIC"},
      {"local crop", [](JobSpec* s) { s->mutable_augmentation()->set_local_crop_size(32); },
       "augmentation.local_crop_size must be < augmentation.global_crop_size (32), got 32"},
      {"patch", [](JobSpec* s) { s->mutable_model()->set_patch_size(5); },
       "model.patch_size must divide augmentation.global_crop_size (32), got 5"},
      {"preset", [](JobSpec* s) { s->mutable_model()->set_preset("vit_huge"); },
       "model.preset must be one of vit_tiny, vit_small, vit_base, custom, got \"vit_huge\""},
      {"heads",
       [](JobSpec* s) {
         s->mutable_model()->set_preset("custom");
         s->mutable_model()->set_dim(100);
         s->mutable_model()->set_heads(3);
       },
       "model.dim must be divisible by model.heads, got 100 and 3"},
      {"flip", [](JobSpec* s) { s->mutable_augmentation()->set_flip_prob(1.5); },
       "augmentation.flip_prob must be in [0, 1], got 1.5"},
      {"scales", [](JobSpec* s) { s->mutable_augmentation()->set_local_crop_scale_min(0.5); },
       "augmentation.local_crop_scale_min must be <= augmentation.local_crop_scale_max (0.4), "
       "got 0.5"},
      {"min lr", [](JobSpec* s) { s->mutable_optim()->set_min_lr(1); },
       "optim.min_lr must be <= optim.lr (0.0005), got 1"},
      {"warmup", [](JobSpec* s) { s->mutable_optim()->set_warmup_epochs(5); },
       "optim.warmup_epochs must be <= optim.epochs (2), got 5"},
      {"momentum", [](JobSpec* s) { s->mutable_dino()->set_momentum_teacher(1.2); },
       "dino.momentum_teacher must be in [0, 1], got 1.2"},
      {"world", [](JobSpec* s) { s->mutable_resources()->set_world_size(0); },
       "resources.world_size must be >= 1, got 0"},
      {"cpu world", [](JobSpec* s) { s->mutable_resources()->set_world_size(300); },
       "resources.world_size must be <= 256 for DEVICE_KIND_CPU, got 300"},
      {"bf16", [](JobSpec* s) { s->mutable_optim()->set_bf16(true); },
       "optim.bf16 must be false unless resources.device is DEVICE_KIND_CUDA"},
      {"keep last", [](JobSpec* s) { s->mutable_checkpoint()->set_keep_last(0); },
       "checkpoint.keep_last must be in [1, 10000], got 0"},
      {"eval split",
       [](JobSpec* s) {
         s->mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
         s->mutable_data()->set_path("/data/train");
         s->mutable_eval()->set_every_epochs(1);
       },
       "data.eval_path must be set when eval.every_epochs > 0"},
      {"idx labels",
       [](JobSpec* s) {
         s->mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
         s->mutable_data()->set_path("/data/train");
         s->mutable_data()->set_eval_path("/data/test");
       },
       "data.labels_path and data.eval_labels_path must be set"},
      {"restarts", [](JobSpec* s) { s->set_max_restarts(-1); },
       "max_restarts must be in [0, 1000], got -1"},
      {"label key", [](JobSpec* s) { (*s->mutable_labels())["Bad Key"] = "x"; },
       "labels key \"Bad Key\" must be 1..63 bytes"},
      {"priority", [](JobSpec* s) { s->set_priority(5000); },
       "priority must be in [-1000, 1000], got 5000"},
      {"collapse", [](JobSpec* s) { s->mutable_collapse()->set_consecutive_reports(0); },
       "collapse.consecutive_reports must be in [1, 1000000], got 0"},
  };
  for (const BadSpec& c : cases) {
    JobSpec spec = testing::TinySpec();
    c.mutate(&spec);
    ApplyJobSpecDefaults(&spec);
    absl::Status status = ValidateJobSpec(spec);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(c.message)) << c.name;
  }
}

TEST(JobSpecTest, TinySpecIsValid) {
  JobSpec spec = testing::TinySpec();
  ApplyJobSpecDefaults(&spec);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

}  // namespace
}  // namespace dino::spec
