// Schedules against hand-computed values (docs/dino.md, "Optimisation" and "Loss"), and the config.
#include "worker/dino/schedules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "worker/dino/config.h"
#include "worker/dino/teacher.h"
#include "worker/dino/trainer.h"

namespace dino {
namespace {

using ::testing::HasSubstr;

TEST(SchedulesTest, CosineEndpointsAndMidpoint) {
  // final + (base - final) * (1 + cos(pi * i / n)) / 2 with n = 10.
  EXPECT_DOUBLE_EQ(CosineSchedule(1.0, 0.0, 0, 10), 1.0);
  EXPECT_NEAR(CosineSchedule(1.0, 0.0, 5, 10), 0.5, 1e-15);
  EXPECT_NEAR(CosineSchedule(1.0, 0.0, 9, 10), 0.024471741852423234, 1e-15);  // (1+cos .9pi)/2
  // Past the end and before the start are clamped.
  EXPECT_NEAR(CosineSchedule(1.0, 0.0, 50, 10), 0.024471741852423234, 1e-15);
  EXPECT_DOUBLE_EQ(CosineSchedule(1.0, 0.0, -3, 10), 1.0);
}

TEST(SchedulesTest, LinearWarmupThenCosine) {
  // 5 warm-up iterations: linspace(0, 1e-3, 5) = 0, .25e-3, .5e-3, .75e-3, 1e-3; then the cosine
  // over n = 20 iterations from 1e-3 to 1e-6.
  const double base = 1e-3, fin = 1e-6;
  EXPECT_EQ(CosineSchedule(base, fin, 0, 25, 5), 0.0);
  EXPECT_NEAR(CosineSchedule(base, fin, 1, 25, 5), 0.25e-3, 1e-18);
  EXPECT_NEAR(CosineSchedule(base, fin, 2, 25, 5), 0.5e-3, 1e-18);
  EXPECT_EQ(CosineSchedule(base, fin, 4, 25, 5), base);  // numpy puts `stop` exactly.
  EXPECT_NEAR(CosineSchedule(base, fin, 5, 25, 5), base, 1e-18);
  EXPECT_NEAR(CosineSchedule(base, fin, 15, 25, 5), (base + fin) / 2, 1e-18);  // i = n/2
  EXPECT_NEAR(CosineSchedule(base, fin, 24, 25, 5), 7.149673872728739e-06, 1e-18);
  // A start value other than 0.
  EXPECT_NEAR(CosineSchedule(1.0, 0.0, 1, 10, 3, 0.5), 0.75, 1e-15);
}

TEST(SchedulesTest, TeacherTemperatureWarmup) {
  // linspace(0.04, 0.07, 30)[e] for e < 30, then 0.07.
  EXPECT_DOUBLE_EQ(TeacherTemperature(0, 0.04, 0.07, 30), 0.04);
  EXPECT_NEAR(TeacherTemperature(10, 0.04, 0.07, 30), 0.0503448275862069, 1e-15);
  EXPECT_DOUBLE_EQ(TeacherTemperature(29, 0.04, 0.07, 30), 0.07);
  EXPECT_DOUBLE_EQ(TeacherTemperature(30, 0.04, 0.07, 30), 0.07);
  EXPECT_DOUBLE_EQ(TeacherTemperature(500, 0.04, 0.07, 30), 0.07);
  EXPECT_DOUBLE_EQ(TeacherTemperature(0, 0.04, 0.07, 0), 0.07);  // no warm-up
}

TEST(SchedulesTest, TeacherMomentumCosineToOne) {
  EXPECT_DOUBLE_EQ(TeacherMomentum(0.996, 0, 100), 0.996);
  EXPECT_NEAR(TeacherMomentum(0.996, 50, 100), 0.998, 1e-15);
  EXPECT_NEAR(TeacherMomentum(0.996, 99, 100), 0.9999990131207315, 1e-15);
}

// The defaults of docs/dino.md on 4 ranks x 64 = 256 images: lr 0.0005 after 10 warm-up epochs.
TEST(SchedulesTest, SchedulesAtUsesTheGlobalBatchAndEpochs) {
  TrainConfig c;
  c.world_size = 4;
  c.optim.batch_size_per_rank = 64;
  c.optim.epochs = 100;
  c.steps_per_epoch = 10;  // 1000 iterations, 100 of warm-up
  EXPECT_DOUBLE_EQ(c.scaled_lr(), 0.0005);
  EXPECT_EQ(SchedulesAt(c, 0).lr, 0.0);
  EXPECT_NEAR(SchedulesAt(c, 50).lr, 50 * 0.0005 / 99, 1e-18);
  EXPECT_DOUBLE_EQ(SchedulesAt(c, 99).lr, 0.0005);
  EXPECT_NEAR(SchedulesAt(c, 100).lr, 0.0005, 1e-18);
  EXPECT_NEAR(SchedulesAt(c, 550).lr, 0.0002505, 1e-15);  // cosine midpoint: (5e-4 + 1e-6) / 2
  EXPECT_DOUBLE_EQ(SchedulesAt(c, 0).weight_decay, 0.04);
  EXPECT_NEAR(SchedulesAt(c, 500).weight_decay, 0.22, 1e-15);
  EXPECT_NEAR(SchedulesAt(c, 999).weight_decay, 0.3999991117363345, 1e-15);
  EXPECT_DOUBLE_EQ(SchedulesAt(c, 0).teacher_momentum, 0.996);
  EXPECT_DOUBLE_EQ(SchedulesAt(c, 9).teacher_temp, 0.04);                    // still epoch 0
  EXPECT_NEAR(SchedulesAt(c, 100).teacher_temp, 0.0503448275862069, 1e-15);  // epoch 10
  EXPECT_DOUBLE_EQ(SchedulesAt(c, 299).teacher_temp, 0.07);                  // epoch 29
}

TEST(ConfigTest, PresetsValidationAndRoundTrip) {
  TrainConfig c;
  c.model.preset = "vit_tiny";
  ASSERT_TRUE(c.ApplyPreset().ok());
  EXPECT_EQ(c.model.dim, 192);
  EXPECT_EQ(c.model.heads, 3);
  c.model.preset = "vit_base";
  ASSERT_TRUE(c.ApplyPreset().ok());
  EXPECT_EQ(c.model.dim, 768);
  EXPECT_TRUE(c.Validate().ok());
  c.model.preset = "vit_huge";
  EXPECT_EQ(c.ApplyPreset().code(), absl::StatusCode::kInvalidArgument);

  TrainConfig bad;
  bad.model.heads = 5;
  EXPECT_THAT(std::string(bad.Validate().message()), HasSubstr("model.heads"));
  bad = TrainConfig();
  bad.crops.local_crop_size = 8;
  EXPECT_THAT(std::string(bad.Validate().message()), HasSubstr("crops.local_crop_size"));

  TrainConfig custom;
  custom.model.preset = "custom";
  custom.model.dim = 48;
  custom.dino.teacher_temp = 0.0123456789012345;
  custom.device = "cuda:1";
  custom.seed = 99;
  auto back = TrainConfig::FromKeyValues(custom.ToKeyValues());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToKeyValues(), custom.ToKeyValues());
  EXPECT_EQ(back->dino.teacher_temp, custom.dino.teacher_temp);
  auto kv = custom.ToKeyValues();
  kv["model.dim"] = "forty";
  EXPECT_EQ(TrainConfig::FromKeyValues(kv).status().code(), absl::StatusCode::kInvalidArgument);
}

// Checkpoints written before the head's fields took the job spec's names keep loading.
TEST(ConfigTest, ReadsTheHeadKeysOfOlderCheckpoints) {
  std::map<std::string, std::string> kv = TrainConfig().ToKeyValues();
  kv.erase("head.hidden_dim");
  kv.erase("head.bottleneck_dim");
  kv["head.hidden"] = "96";
  kv["head.bottleneck"] = "24";
  absl::StatusOr<TrainConfig> old = TrainConfig::FromKeyValues(kv);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->head.hidden_dim, 96);
  EXPECT_EQ(old->head.bottleneck_dim, 24);
}

}  // namespace
}  // namespace dino
