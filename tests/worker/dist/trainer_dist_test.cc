// The real DINO Trainer over C10dCollectives + BucketedGradientSync, ranks as threads (Gloo over
// loopback): data-parallel equivalence with one rank, rank consistency, and the resume check.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tests/worker/dist/dino_dist_test_util.h"
#include "tests/worker/dist/dist_test_util.h"
#include "worker/dino/collectives.h"
#include "worker/dino/trainer.h"
#include "worker/dist/bucketed_gradient_sync.h"
#include "worker/dist/c10d_collectives.h"

namespace dino::dist {
namespace {

using testing::BitIdentical;
using testing::CaptureState;
using testing::MakeGlobalCrops;
using testing::MaxAbsDiff;
using testing::RankSlice;
using testing::RestoreWeights;
using testing::TinyDinoConfig;
using testing::TrainerState;

constexpr int64_t kPerRank = 4;
constexpr int kSteps = 3;  // crosses the epoch boundary at step 2, where the last layer unfreezes
constexpr double kTolerance = 1e-5;

// The tiny config with a small lr and a fast teacher. Why small: the averaged gradients equal the
// full-batch ones to float rounding (~1e-6 relative, asserted below), but AdamW's g / (sqrt(v) +
// eps) turns the rounding of gradient elements near eps = 1e-8 into update differences of order
// lr * |g|_max * 1e-6 / eps; at lr 0.02 that measured 4e-4 for identical-to-rounding gradients.
// At lr 1e-4 the weights still move by ~3e-4 in kSteps while that noise stays below 1e-5.
TrainConfig EquivalenceConfig(int64_t per_rank, int64_t world) {
  TrainConfig c = TinyDinoConfig(per_rank, world);
  c.optim.lr = 1e-4 * 256.0 / static_cast<double>(per_rank * world);  // scaled lr 1e-4
  c.dino.momentum_teacher = 0.5;
  return c;
}

// The student's gradients after a step (averaged, clipped; undefined where dropped).
std::vector<torch::Tensor> Gradients(Trainer& trainer) {
  std::vector<torch::Tensor> out;
  for (const auto& p : trainer.StudentParameters()) {
    out.push_back(p.grad().defined() ? p.grad().detach().clone() : torch::Tensor());
  }
  return out;
}

// Per tensor: |a - b|_max <= tolerance * |b|_max (float rounding measures ~1e-6).
void ExpectGradientsMatch(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b,
                          double tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].defined(), b[i].defined()) << "parameter " << i;
    if (!a[i].defined()) continue;
    const double scale = std::max(1e-12, b[i].abs().max().item<double>());
    EXPECT_LE(MaxAbsDiff({a[i]}, {b[i]}), tolerance * scale) << "parameter " << i;
  }
}

// One rank with the whole batch of 2 * kPerRank: the reference. `initial` gets its start state,
// `grads` the gradients of every step.
TrainerState ReferenceRun(TrainerState* initial, std::vector<std::vector<torch::Tensor>>* grads) {
  LocalCollectives collectives;
  LocalGradientSync sync;
  const TrainConfig config = EquivalenceConfig(2 * kPerRank, 1);
  auto trainer = Trainer::Create(config, &collectives, &sync);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return {};
  *initial = CaptureState(**trainer);
  for (int step = 0; step < kSteps; ++step) {
    auto r = (*trainer)->Step(MakeGlobalCrops(config, 2 * kPerRank, step));
    EXPECT_TRUE(r.ok()) << r.status();
    grads->push_back(Gradients(**trainer));
  }
  return CaptureState(**trainer);
}

// Builds a Trainer for `group`, starts it from `initial` (rank 0's random init is drawn while the
// other rank thread also draws from LibTorch's process-wide generator, so it is not the
// reference's), checks the ranks agree, and trains kSteps on this rank's slice.
absl::Status DistributedRun(ProcessGroupHandle* group, const TrainerState& initial,
                            int64_t bucket_cap, TrainerState* out,
                            std::vector<std::vector<torch::Tensor>>* grads) {
  C10dCollectives collectives(group);
  BucketedGradientSync sync(group, GradientSyncOptions{bucket_cap});
  const TrainConfig config = EquivalenceConfig(kPerRank, group->world_size());
  auto trainer = Trainer::Create(config, &collectives, &sync);
  if (!trainer.ok()) return trainer.status();
  RestoreWeights(**trainer, initial);
  if (auto s = VerifySameParameters(&collectives, (*trainer)->StudentParameters()); !s.ok()) {
    return s;
  }
  for (int step = 0; step < kSteps; ++step) {
    auto crops = RankSlice(MakeGlobalCrops(config, 2 * kPerRank, step), group->rank(), kPerRank);
    auto r = (*trainer)->Step(crops);
    if (!r.ok()) return r.status();
    grads->push_back(Gradients(**trainer));
    // Overlap: from the second step on (buckets rebuilt in arrival order; the Trainer lists its
    // parameters by weight-decay group), the first bucket leaves while backward still runs.
    const StepTrace trace = sync.last_trace();
    if (step > 0 && trace.launches.size() > 1) {
      EXPECT_TRUE(trace.launches.front().during_backward) << "step " << step;
      EXPECT_LT(trace.launches.front().at, trace.finish_step_called) << "step " << step;
    }
  }
  *out = CaptureState(**trainer);
  return absl::OkStatus();
}

TEST(TrainerDistTest, TwoRanksMatchOneRankWithDoubleBatch) {
  TrainerState initial;
  std::vector<std::vector<torch::Tensor>> reference_grads;
  const TrainerState reference = ReferenceRun(&initial, &reference_grads);
  ASSERT_FALSE(reference.student.empty());
  // The steps must move the weights, or the comparison proves nothing.
  ASSERT_GT(MaxAbsDiff(reference.student, initial.student), 10 * kTolerance);
  ASSERT_GT(MaxAbsDiff(reference.teacher, initial.teacher), 10 * kTolerance);
  ASSERT_GT(reference.center.abs().max().item<double>(), 10 * kTolerance);

  // 1 KiB buckets: many buckets launched during backward; 25 MB: one bucket.
  for (int64_t cap : {int64_t{1024}, int64_t{25} << 20}) {
    TrainerState ranks[2];
    std::vector<std::vector<torch::Tensor>> grads[2];
    absl::Status s = testing::RunRanks(2, "trainer-equiv", [&](int rank, ProcessGroupHandle* g) {
      return DistributedRun(g, initial, cap, &ranks[rank], &grads[rank]);
    });
    ASSERT_TRUE(s.ok()) << s;
    for (int r = 0; r < 2; ++r) {
      SCOPED_TRACE(::testing::Message() << "bucket cap " << cap << ", rank " << r);
      ASSERT_EQ(grads[r].size(), reference_grads.size());
      for (size_t step = 0; step < reference_grads.size(); ++step) {
        SCOPED_TRACE(::testing::Message() << "step " << step);
        ExpectGradientsMatch(grads[r][step], reference_grads[step], kTolerance);
      }
      EXPECT_LE(MaxAbsDiff(ranks[r].student, reference.student), kTolerance);
      EXPECT_LE(MaxAbsDiff(ranks[r].teacher, reference.teacher), kTolerance);
      EXPECT_LE(MaxAbsDiff({ranks[r].center}, {reference.center}), kTolerance);
    }
    // Consistency: every rank holds exactly the same student, teacher and center.
    EXPECT_TRUE(BitIdentical(ranks[0].student, ranks[1].student)) << "cap " << cap;
    EXPECT_TRUE(BitIdentical(ranks[0].teacher, ranks[1].teacher)) << "cap " << cap;
    EXPECT_TRUE(torch::equal(ranks[0].center, ranks[1].center)) << "cap " << cap;
  }
}

// A resumed attempt: every rank loads the checkpoint, and one checksum all-reduce confirms they
// hold the same student, teacher and center (and catches a rank that loaded another one).
TEST(TrainerDistTest, ResumedRanksVerifyTheyLoadedTheSameCheckpoint) {
  std::string after_one, after_two;
  {
    LocalCollectives collectives;
    LocalGradientSync sync;
    const TrainConfig config = TinyDinoConfig(2 * kPerRank, 1);
    auto trainer = Trainer::Create(config, &collectives, &sync);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    for (int step = 0; step < 2; ++step) {
      ASSERT_TRUE((*trainer)->Step(MakeGlobalCrops(config, 2 * kPerRank, step)).ok());
      auto bytes = (*trainer)->CheckpointBytes(CheckpointExtras{});
      ASSERT_TRUE(bytes.ok()) << bytes.status();
      (step == 0 ? after_one : after_two) = *std::move(bytes);
    }
  }
  TrainerState ranks[2];
  absl::Status s = testing::RunRanks(2, "trainer-resume", [&](int rank, ProcessGroupHandle* g) {
    C10dCollectives collectives(g);
    BucketedGradientSync sync(g, GradientSyncOptions{1024});
    const TrainConfig config = TinyDinoConfig(kPerRank, 2);
    auto trainer = Trainer::Create(config, &collectives, &sync);
    if (!trainer.ok()) return trainer.status();
    auto load = [&](const std::string& bytes) {
      return (*trainer)->LoadCheckpointBytes(bytes, "test checkpoint").status();
    };
    if (auto st = load(after_two); !st.ok()) return st;
    EXPECT_EQ((*trainer)->step(), 2);
    absl::Status agreed = VerifySameParameters(&collectives, testing::AgreementTensors(**trainer));
    EXPECT_TRUE(agreed.ok()) << agreed;
    // Rank 1 resumes from an older checkpoint: both ranks must refuse to train.
    if (auto st = load(rank == 1 ? after_one : after_two); !st.ok()) return st;
    absl::Status disagreed =
        VerifySameParameters(&collectives, testing::AgreementTensors(**trainer));
    EXPECT_EQ(disagreed.code(), absl::StatusCode::kFailedPrecondition) << "rank " << rank;
    // Resumed from the same checkpoint, the ranks train on in lockstep.
    if (auto st = load(after_two); !st.ok()) return st;
    auto r = (*trainer)->Step(RankSlice(MakeGlobalCrops(config, 2 * kPerRank, 2), rank, kPerRank));
    if (!r.ok()) return r.status();
    ranks[rank] = CaptureState(**trainer);
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(BitIdentical(ranks[0].student, ranks[1].student));
  EXPECT_TRUE(BitIdentical(ranks[0].teacher, ranks[1].teacher));
  EXPECT_TRUE(torch::equal(ranks[0].center, ranks[1].center));
}

}  // namespace
}  // namespace dino::dist
