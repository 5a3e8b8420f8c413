// Trainer behaviour outside the numerics: exact resume (in this process and in a fresh one),
// rejection of corrupt, truncated and incompatible checkpoints, atomic checkpoint writes, the
// non-finite-loss stop, crop validation, threads and the per-step statistics.
#include "worker/dino/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_system.h"
#include "tests/worker/dino/test_util.h"
#include "worker/dino/checkpoint.h"
#include "worker/dino/collectives.h"
#include "worker/dino/failure_kind.h"

namespace dino {
namespace {

using ::testing::HasSubstr;
using testing::TensorDict;

class TrainerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Trainer> NewTrainer(const TrainConfig& config) {
    auto t = Trainer::Create(config, &collectives_, &sync_);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }

  static void RunSteps(Trainer& trainer, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      auto r = trainer.Step(testing::MakeCrops(trainer.config(), trainer.step()));
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }

  static double MaxDiff(const TensorDict& a, const TensorDict& b) {
    double m = a.size() == b.size() ? 0.0 : std::numeric_limits<double>::infinity();
    for (const auto& [k, v] : a) {
      auto it = b.find(k);
      m = std::max(m, it == b.end() ? std::numeric_limits<double>::infinity()
                                    : testing::MaxAbsDiff(v, it->second));
    }
    return m;
  }

  LocalCollectives collectives_;
  LocalGradientSync sync_;
};

// 2N steps in one go equal N steps, a checkpoint, a fresh Trainer (here and in a fresh process)
// and N more. Drop-path is on, so the RNG state must be restored too; N = steps_per_epoch, so the
// resumed half starts the epoch where the last layer is unfrozen and the temperature changes.
TEST_F(TrainerTest, ResumeIsExactInThisAndInAFreshProcess) {
  TrainConfig config = testing::TinyConfig();
  config.model.drop_path_rate = 0.2;
  const int64_t n = config.steps_per_epoch;
  auto straight = NewTrainer(config);
  RunSteps(*straight, 2 * n);
  const TensorDict expected = testing::TrainerState(*straight);

  auto first = NewTrainer(config);
  RunSteps(*first, n);
  EXPECT_GT(MaxDiff(testing::TrainerState(*first), expected), 1e-4)
      << "the halves must differ to mean much";
  const std::string dir = testing::MakeTempDir("resume");
  const std::string ckpt = dir + "/half.ckpt";
  const CheckpointExtras extras{1, 0, std::string("loader\0state", 12)};
  ASSERT_TRUE(first->SaveCheckpoint(DefaultFileSystem(), ckpt, extras).ok());

  auto resumed = NewTrainer(config);
  auto loaded = resumed->LoadCheckpoint(DefaultFileSystem(), ckpt);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->loader_epoch, 1);
  EXPECT_EQ(loaded->loader_step_in_epoch, 0);
  EXPECT_EQ(loaded->loader_state, extras.loader_state);
  EXPECT_EQ(resumed->step(), n);
  RunSteps(*resumed, n);
  EXPECT_LE(MaxDiff(testing::TrainerState(*resumed), expected), 1e-6);

  const std::string out = dir + "/resumed.ckpt";
  const std::string cmd = absl::StrCat(DINO_RESUME_HELPER, " ", ckpt, " ", n, " ", out);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto from_process = NewTrainer(config);
  auto loaded2 = from_process->LoadCheckpoint(DefaultFileSystem(), out);
  ASSERT_TRUE(loaded2.ok()) << loaded2.status();
  EXPECT_EQ(loaded2->loader_state, extras.loader_state);
  EXPECT_EQ(from_process->step(), 2 * n);
  EXPECT_LE(MaxDiff(testing::TrainerState(*from_process), expected), 1e-6);
}

TEST_F(TrainerTest, CorruptTruncatedAndIncompatibleCheckpointsAreRejected) {
  const TrainConfig config = testing::TinyConfig();
  auto source = NewTrainer(config);
  RunSteps(*source, 1);
  auto bytes = source->CheckpointBytes({});
  ASSERT_TRUE(bytes.ok()) << bytes.status();

  auto target = NewTrainer(config);
  const TensorDict before = testing::TrainerState(*target);
  auto expect_rejected = [&](const std::string& data, absl::StatusCode code,
                             const std::string& text) {
    auto s = target->LoadCheckpointBytes(data, "ckpt-under-test");
    EXPECT_EQ(s.status().code(), code) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(text));
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("ckpt-under-test"));
  };
  // The frame's own rejections name the file as corrupt (checkpoint_frame_test shows they happen
  // without LibTorch).
  auto expect_corrupt = [&](const std::string& data, const std::string& text) {
    expect_rejected(data, absl::StatusCode::kDataLoss, "corrupt checkpoint: " + text);
  };
  expect_corrupt(bytes->substr(0, bytes->size() - 100), "truncated");
  std::string flipped = *bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  expect_corrupt(flipped, "checksum mismatch");
  expect_corrupt("PK\x03\x04 not a checkpoint", "bad magic");
  expect_corrupt(bytes->substr(kCheckpointHeaderSize), "bad magic: a bare LibTorch archive");
  expect_corrupt("DINOCKP1" + bytes->substr(8), "format 1 (DINOCKP1");
  expect_rejected(FrameCheckpoint("framed, but not a torch archive"), absl::StatusCode::kDataLoss,
                  "archive");
  EXPECT_EQ(target->step(), 0);
  EXPECT_EQ(MaxDiff(testing::TrainerState(*target), before), 0.0);

  TrainConfig wider = config;
  wider.model.dim = 32;
  auto other = NewTrainer(wider);
  auto s = other->LoadCheckpointBytes(*bytes, "ckpt-under-test");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("model.dim is 16 in the checkpoint but 32 in the config"));

  auto missing = target->LoadCheckpoint(DefaultFileSystem(), "/nonexistent/dir/x.ckpt");
  EXPECT_FALSE(missing.ok());
}

// A failed write (rename or fsync) leaves the previous checkpoint intact and loadable.
TEST_F(TrainerTest, CheckpointWritesAreAtomic) {
  const TrainConfig config = testing::TinyConfig();
  auto trainer = NewTrainer(config);
  RunSteps(*trainer, 1);
  FaultInjectingFileSystem fs(DefaultFileSystem());
  const std::string path = testing::MakeTempDir("atomic") + "/latest.ckpt";
  ASSERT_TRUE(trainer->SaveCheckpoint(&fs, path, {}).ok());
  const TensorDict at_step1 = testing::TrainerState(*trainer);
  RunSteps(*trainer, 1);
  for (const char* op : {"RenameFile", "Sync", "Append"}) {
    fs.ClearFaults();
    fs.FailOn(op, "", absl::UnavailableError("injected disk fault"));
    EXPECT_FALSE(trainer->SaveCheckpoint(&fs, path, {}).ok()) << op;
  }
  fs.ClearFaults();
  auto reader = NewTrainer(config);
  ASSERT_TRUE(reader->LoadCheckpoint(&fs, path).ok());
  EXPECT_EQ(reader->step(), 1);
  EXPECT_EQ(MaxDiff(testing::TrainerState(*reader), at_step1), 0.0);
}

TEST_F(TrainerTest, NonFiniteLossStopsWithoutUpdating) {
  auto trainer = NewTrainer(testing::TinyConfig());
  RunSteps(*trainer, 1);
  const TensorDict before = testing::TrainerState(*trainer);
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    auto crops = testing::MakeCrops(trainer->config(), trainer->step());
    crops[3][0][0][0][0] = bad;
    auto r = trainer->Step(crops);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("non-finite loss"));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("at step 1"));
    // Typed where it is detected: the worker classifies it NON_FINITE_LOSS by this value.
    EXPECT_EQ(GetFailureKind(r.status()), FailureKind::kNonFiniteLoss);
    EXPECT_EQ(trainer->step(), 1);
    EXPECT_EQ(MaxDiff(testing::TrainerState(*trainer), before), 0.0);
  }
}

TEST_F(TrainerTest, BadCropsAreInvalidArgument) {
  auto trainer = NewTrainer(testing::TinyConfig());
  auto crops = testing::MakeCrops(trainer->config(), 0);
  crops.pop_back();
  EXPECT_EQ(trainer->Step(crops).status().code(), absl::StatusCode::kInvalidArgument);
  crops = testing::MakeCrops(trainer->config(), 0);
  crops[2] = torch::zeros({4, 3, 12, 12});
  auto r = trainer->Step(crops);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("crop 2"));
}

TEST_F(TrainerTest, ThreadsComeFromTheConfig) {
  TrainConfig config = testing::TinyConfig();
  config.threads = 2;
  NewTrainer(config);
  EXPECT_EQ(torch::get_num_threads(), 2);
  config.threads = 1;
  NewTrainer(config);
  EXPECT_EQ(torch::get_num_threads(), 1);
}

// Invariants of DINO's collapse diagnostics: 0 <= H(t) <= H(mean t) <= log K, KL >= 0.
TEST_F(TrainerTest, StepStatisticsAreConsistent) {
  auto trainer = NewTrainer(testing::TinyConfig());
  const double log_k = std::log(static_cast<double>(trainer->config().head.out_dim));
  for (int i = 0; i < 3; ++i) {
    auto r = trainer->Step(testing::MakeCrops(trainer->config(), trainer->step()));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->step, i);
    EXPECT_GT(r->teacher_entropy, 0.0);
    EXPECT_LE(r->teacher_entropy, r->batch_mean_entropy + 1e-6);
    EXPECT_LE(r->batch_mean_entropy, log_k + 1e-6);
    EXPECT_GE(r->kl_teacher_student, -1e-6);
    EXPECT_GT(r->center_norm, 0.0);
    EXPECT_NEAR(r->center_norm, trainer->center().norm().item<double>(), 1e-9);
  }
}

}  // namespace
}  // namespace dino
