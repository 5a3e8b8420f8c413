// The Trainer's micro-batch split (trainer.h, micro_batch.h): a CPU step computed as concurrent
// parts of the batch equals the unsplit step up to float rounding (losses, statistics, student,
// teacher, center), is deterministic run to run (drop-path on), stops on a non-finite loss
// without updating, is chosen automatically where possible and refused where not.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "tests/worker/dino/test_util.h"
#include "worker/dino/collectives.h"
#include "worker/dino/trainer.h"

namespace dino {
namespace {

using ::testing::HasSubstr;
using testing::TensorDict;

class MicroBatchTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainConfig& config) {
    return Trainer::Create(config, &collectives_, &sync_);
  }

  // Runs `steps` steps; returns the results and leaves the trainer in *out.
  std::vector<StepResult> Run(const TrainConfig& config, int64_t steps,
                              std::unique_ptr<Trainer>* out) {
    auto trainer = Create(config);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    if (!trainer.ok()) return {};
    std::vector<StepResult> results;
    for (int64_t i = 0; i < steps; ++i) {
      auto r = (*trainer)->Step(testing::MakeCrops(config, i));
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) break;
      results.push_back(*r);
    }
    *out = std::move(*trainer);
    return results;
  }

  LocalCollectives collectives_;
  LocalGradientSync sync_;
};

TrainConfig SplittableConfig(int64_t micro_batches) {
  TrainConfig c = testing::TinyConfig();
  c.optim.batch_size_per_rank = 6;
  c.threads = 2;
  c.micro_batches = micro_batches;
  return c;
}

// Six steps cross both epoch boundaries (last layer unfrozen, temperature warm-up). Parts of 3+3
// and of 2+2+2 (and 1+1+2+2 for the uneven split) against the whole batch.
TEST_F(MicroBatchTest, SplitStepEqualsTheUnsplitStep) {
  std::unique_ptr<Trainer> whole;
  const auto expected = Run(SplittableConfig(1), 6, &whole);
  ASSERT_EQ(whole->micro_batches(), 1);
  ASSERT_EQ(expected.size(), 6u);
  const TensorDict expected_state = testing::TrainerState(*whole);
  for (int64_t parts : {2, 3, 4}) {
    SCOPED_TRACE(parts);
    std::unique_ptr<Trainer> split;
    const auto got = Run(SplittableConfig(parts), 6, &split);
    ASSERT_EQ(split->micro_batches(), parts);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i].loss, expected[i].loss, 1e-5) << "step " << i;
      EXPECT_NEAR(got[i].teacher_entropy, expected[i].teacher_entropy, 1e-5) << "step " << i;
      EXPECT_NEAR(got[i].batch_mean_entropy, expected[i].batch_mean_entropy, 1e-5) << i;
      EXPECT_NEAR(got[i].kl_teacher_student, expected[i].kl_teacher_student, 1e-5) << i;
      EXPECT_NEAR(got[i].center_norm, expected[i].center_norm, 1e-5) << "step " << i;
    }
    const TensorDict state = testing::TrainerState(*split);
    ASSERT_EQ(state.size(), expected_state.size());
    for (const auto& [name, t] : expected_state) {
      if (name.size() > 13 && name.compare(name.size() - 13, 13, "attn.qkv.bias") == 0) {
        // The key bias adds the same q·b_k to every logit of a softmax row, so its gradient is 0
        // up to rounding noise, which AdamW's m/√v turns into lr-sized steps of arbitrary sign:
        // it differs between any two summation orders. Compare the query and value biases.
        const int64_t dim = t.size(0) / 3;
        EXPECT_LT(testing::MaxAbsDiff(state.at(name).narrow(0, 0, dim), t.narrow(0, 0, dim)), 1e-5)
            << name << " (query)";
        EXPECT_LT(
            testing::MaxAbsDiff(state.at(name).narrow(0, 2 * dim, dim), t.narrow(0, 2 * dim, dim)),
            1e-5)
            << name << " (value)";
        continue;
      }
      EXPECT_LT(testing::MaxAbsDiff(state.at(name), t), 1e-5) << name;
    }
    // Training moved the weights by far more than the tolerance, so the comparison has teeth.
    TrainConfig fresh = SplittableConfig(1);
    auto untrained = Create(fresh);
    ASSERT_TRUE(untrained.ok());
    EXPECT_GT(
        testing::MaxAbsDiff(testing::TrainerState(**untrained).at("student.backbone.pos_embed"),
                            state.at("student.backbone.pos_embed")),
        1e-3);
  }
}

TEST_F(MicroBatchTest, SplitRunIsDeterministicWithDropPath) {
  TrainConfig config = SplittableConfig(3);
  config.model.drop_path_rate = 0.3;
  std::unique_ptr<Trainer> a, b;
  const auto ra = Run(config, 4, &a);
  const auto rb = Run(config, 4, &b);
  ASSERT_EQ(ra.size(), 4u);
  ASSERT_EQ(rb.size(), 4u);
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(ra[i].loss, rb[i].loss) << "step " << i;
  const TensorDict sa = testing::TrainerState(*a), sb = testing::TrainerState(*b);
  for (const auto& [name, t] : sa) EXPECT_TRUE(torch::equal(t, sb.at(name))) << name;
}

TEST_F(MicroBatchTest, NonFiniteLossStopsWithoutUpdating) {
  std::unique_ptr<Trainer> trainer;
  Run(SplittableConfig(2), 1, &trainer);
  ASSERT_NE(trainer, nullptr);
  const TensorDict before = testing::TrainerState(*trainer);
  auto crops = testing::MakeCrops(trainer->config(), 1);
  crops[3][5][0][0][0] = std::numeric_limits<double>::quiet_NaN();  // a sample of the last part
  auto r = trainer->Step(crops);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("non-finite loss"));
  EXPECT_EQ(trainer->step(), 1);
  for (const auto& [name, t] : testing::TrainerState(*trainer)) {
    EXPECT_TRUE(torch::equal(t, before.at(name))) << name;
  }
  // The next good step trains on.
  EXPECT_TRUE(trainer->Step(testing::MakeCrops(trainer->config(), 1)).ok());
}

TEST_F(MicroBatchTest, AutomaticWherePossibleAndRefusedWhereNot) {
  TrainConfig config = SplittableConfig(0);
  config.optim.batch_size_per_rank = 32;  // batch / 16 = 2 parts, at most `threads`
  auto two = Create(config);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ((*two)->micro_batches(), 2);

  config.threads = 1;
  auto one_thread = Create(config);
  ASSERT_TRUE(one_thread.ok()) << one_thread.status();
  EXPECT_EQ((*one_thread)->micro_batches(), 1);

  config.threads = 2;
  config.head.use_bn = true;  // batch statistics would differ per part: never split
  auto bn = Create(config);
  ASSERT_TRUE(bn.ok()) << bn.status();
  EXPECT_EQ((*bn)->micro_batches(), 1);
  config.micro_batches = 2;
  auto bn_split = Create(config);
  EXPECT_EQ(bn_split.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bn_split.status().message()), HasSubstr("head BatchNorm"));

  config.head.use_bn = false;
  config.micro_batches = 33;
  auto too_many = Create(config);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.status().message()), HasSubstr("exceeds the batch"));
}

}  // namespace
}  // namespace dino
