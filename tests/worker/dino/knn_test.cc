// Weighted k-NN on a case small enough to check by hand, and Embed's batching.
#include "worker/dino/knn.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tests/worker/dino/test_util.h"
#include "worker/dino/vit.h"

namespace dino {
namespace {

// Train (2-D, unit norm): a (0.99, .) class 0, b (0.5, +) and c (0.5, -) class 1, d (-1, 0) class
// 0. Test t1 = (1, 0) and t2 = (-1, 0), both class 0. With k = 3:
//   t1: neighbours a (sim 0.99, class 0), b and c (0.5, class 1).
//       T = 0.07: exp(0.99/0.07) = e^14.1 beats 2·e^7.1, predicts 0 (right);
//       T = 100: weights ~1, the two class-1 votes win, predicts 1 (wrong).
//   t2: neighbours d (1.0, class 0), b and c (-0.5, class 1): T = 0.07 predicts 0 (right),
//       T = 100 predicts 1 (wrong).
// So top-1 is 100% at T = 0.07 and 0% at T = 100: the votes are weighted, not counted.
struct Toy {
  torch::Tensor train, train_labels, test, test_labels;
};

Toy MakeToy() {
  const double s = std::sqrt(1 - 0.99 * 0.99), h = std::sqrt(0.75);
  Toy t;
  t.train = torch::tensor({0.99, s, 0.5, h, 0.5, -h, -1.0, 0.0}, torch::kFloat).reshape({4, 2});
  t.train_labels = torch::tensor({0, 1, 1, 0}, torch::kLong);
  t.test = torch::tensor({1.0, 0.0, -1.0, 0.0}, torch::kFloat).reshape({2, 2});
  t.test_labels = torch::tensor({0, 0}, torch::kLong);
  return t;
}

TEST(KnnTest, VotesAreWeightedByExpSimilarityOverT) {
  const Toy t = MakeToy();
  auto sharp = WeightedKnnTop1(t.train, t.train_labels, t.test, t.test_labels, 2, 3, 0.07);
  ASSERT_TRUE(sharp.ok()) << sharp.status();
  EXPECT_EQ(sharp->correct, 2);
  EXPECT_EQ(sharp->total, 2);
  EXPECT_DOUBLE_EQ(sharp->top1, 100.0);
  auto flat = WeightedKnnTop1(t.train, t.train_labels, t.test, t.test_labels, 2, 3, 100.0);
  ASSERT_TRUE(flat.ok()) << flat.status();
  EXPECT_EQ(flat->correct, 0);
  EXPECT_DOUBLE_EQ(flat->top1, 0.0);
}

TEST(KnnTest, KLargerThanTheTrainingSetAndChunkingGiveTheSameAnswer) {
  const Toy t = MakeToy();
  // k = 20 > 4 uses all four: t1 gets e^14.1 + e^-14.3 for class 0 vs 2·e^7.1, still class 0.
  auto all = WeightedKnnTop1(t.train, t.train_labels, t.test, t.test_labels, 2, 20, 0.07, 1);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->correct, 2);
  auto one_chunk = WeightedKnnTop1(t.train, t.train_labels, t.test, t.test_labels, 2, 3, 0.07, 1);
  ASSERT_TRUE(one_chunk.ok());
  EXPECT_EQ(one_chunk->correct, 2);
}

TEST(KnnTest, BadInputsAreInvalidArgument) {
  const Toy t = MakeToy();
  EXPECT_EQ(WeightedKnnTop1(t.train, t.train_labels, torch::zeros({2, 3}), t.test_labels, 2)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      WeightedKnnTop1(t.train, torch::tensor({0, 1, 5, 0}, torch::kLong), t.test, t.test_labels, 2)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WeightedKnnTop1(t.train, t.train_labels.slice(0, 0, 3), t.test, t.test_labels, 2)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KnnTest, EmbedIsNormalisedAndIndependentOfTheBatchSize) {
  const TrainConfig config = testing::TinyConfig();
  torch::manual_seed(4);
  VisionTransformer vit(config.model, 0.0);
  const auto images = torch::randn({5, 3, 16, 16});
  auto whole = Embed(vit, images, 5, torch::kCPU);
  auto batched = Embed(vit, images, 2, torch::kCPU);
  ASSERT_TRUE(whole.ok() && batched.ok());
  ASSERT_EQ(whole->sizes(), (std::vector<int64_t>{5, config.model.dim}));
  EXPECT_LE(testing::MaxAbsDiff(*whole, *batched), 1e-6);
  EXPECT_LE(testing::MaxAbsDiff(whole->norm(2, {1}), torch::ones({5})), 1e-6);
  EXPECT_TRUE(vit->is_training()) << "Embed restores the training flag";
}

}  // namespace
}  // namespace dino
