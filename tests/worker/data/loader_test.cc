// Loader: distributed-sampler sharding (disjoint, covering, per-epoch orders), determinism per
// (seed, epoch, rank, step), mid-epoch resume from checkpoint bytes, epoch rollover, errors.
#include "worker/data/loader.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

namespace dino::data {
namespace {

std::shared_ptr<const Dataset> Synthetic(int64_t size, int64_t channels = 1,
                                         int64_t resolution = 16) {
  SyntheticOptions o;
  o.size = size;
  o.channels = channels;
  o.resolution = resolution;
  o.seed = 3;
  return *MakeSyntheticDataset(o);
}

NormalizationStats Stats(int64_t c) {
  return {std::vector<double>(c, 0.3), std::vector<double>(c, 0.3)};
}

AugmentOptions SmallViews() { return AugmentOptions::ForResolution(16, /*n_local_crops=*/2); }

TEST(ShardIndicesTest, DisjointShardsCoverTheEpoch) {
  for (bool drop_last : {true, false}) {
    LoaderOptions o;
    o.world_size = 3;
    o.seed = 11;
    o.drop_last = drop_last;
    std::multiset<int64_t> all;
    for (int64_t r = 0; r < 3; ++r) {
      o.rank = r;
      auto shard = ShardIndices(100, o, /*epoch=*/2);
      EXPECT_EQ(shard.size(), drop_last ? 33u : 34u);
      all.insert(shard.begin(), shard.end());
    }
    const std::set<int64_t> distinct(all.begin(), all.end());
    if (drop_last) {
      EXPECT_EQ(all.size(), 99u);
      EXPECT_EQ(distinct.size(), 99u);  // disjoint; one sample left out, as torch does
    } else {
      EXPECT_EQ(distinct.size(), 100u);  // covering; two samples padded by wrapping around
      EXPECT_EQ(all.size(), 102u);
    }
    for (int64_t i : distinct) {
      EXPECT_GE(i, 0);
      EXPECT_LT(i, 100);
    }
  }
}

TEST(ShardIndicesTest, EpochsDifferSeedsDifferSameInputsSameOrder) {
  LoaderOptions o;
  o.seed = 1;
  auto e0 = ShardIndices(1000, o, 0), e1 = ShardIndices(1000, o, 1);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, ShardIndices(1000, o, 0));
  o.seed = 2;
  EXPECT_NE(e0, ShardIndices(1000, o, 0));
  // A real permutation, not the identity.
  std::vector<int64_t> identity(1000);
  for (int64_t i = 0; i < 1000; ++i) identity[i] = i;
  EXPECT_NE(e0, identity);
  EXPECT_EQ(std::set<int64_t>(e0.begin(), e0.end()).size(), 1000u);
}

void ExpectSameBatch(const MultiCropBatch& a, const MultiCropBatch& b) {
  EXPECT_EQ(a.position, b.position);
  EXPECT_TRUE(torch::equal(a.indices, b.indices));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  ASSERT_EQ(a.crops.size(), b.crops.size());
  for (size_t v = 0; v < a.crops.size(); ++v) EXPECT_TRUE(torch::equal(a.crops[v], b.crops[v]));
}

TEST(LoaderTest, BatchesFollowTheShardAndRollOverEpochs) {
  auto ds = Synthetic(30);
  LoaderOptions o;
  o.batch_size = 4;
  o.world_size = 2;
  o.rank = 1;
  o.seed = 5;
  o.threads = 2;
  o.prefetch_depth = 3;
  auto loader = Loader::Create(ds, o, SmallViews(), Stats(1));
  ASSERT_TRUE(loader.ok()) << loader.status();
  EXPECT_EQ((*loader)->steps_per_epoch(), 3);  // 15 per rank → 3 full batches of 4
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    auto shard = ShardIndices(30, o, epoch);
    for (int64_t step = 0; step < 3; ++step) {
      EXPECT_EQ((*loader)->position(), (LoaderPosition{epoch, step}));
      auto batch = (*loader)->Next();
      ASSERT_TRUE(batch.ok()) << batch.status();
      EXPECT_EQ(batch->position, (LoaderPosition{epoch, step}));
      ASSERT_EQ(batch->indices.size(0), 4);
      for (int64_t i = 0; i < 4; ++i) {
        const int64_t index = batch->indices[i].item<int64_t>();
        EXPECT_EQ(index, shard[step * 4 + i]);
        EXPECT_EQ(batch->labels[i].item<int64_t>(), index % 10);
      }
      ASSERT_EQ(batch->crops.size(), 4u);
      EXPECT_EQ(batch->crops[0].sizes(), (std::vector<int64_t>{4, 1, 16, 16}));
      EXPECT_EQ(batch->crops[3].sizes(), (std::vector<int64_t>{4, 1, 8, 8}));
    }
  }
  EXPECT_EQ((*loader)->position(), (LoaderPosition{2, 0}));
  EXPECT_GE((*loader)->data_wait_seconds(), 0.0);
}

TEST(LoaderTest, NoDropLastKeepsTheShortLastBatch) {
  auto ds = Synthetic(10);
  LoaderOptions o;
  o.batch_size = 4;
  o.drop_last = false;
  auto loader = Loader::Create(ds, o, SmallViews(), Stats(1));
  ASSERT_TRUE(loader.ok());
  EXPECT_EQ((*loader)->steps_per_epoch(), 3);
  std::set<int64_t> seen;
  for (int i = 0; i < 3; ++i) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok());
    EXPECT_EQ(batch->crops[0].size(0), i < 2 ? 4 : 2);
    for (int64_t k = 0; k < batch->indices.size(0); ++k)
      seen.insert(batch->indices[k].item<int64_t>());
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST(LoaderTest, DeterministicPerSeedEpochRankStepAndResumableMidEpoch) {
  auto ds = Synthetic(40, 3);
  LoaderOptions o;
  o.batch_size = 4;
  o.world_size = 2;
  o.seed = 9;
  o.threads = 3;
  auto a = Loader::Create(ds, o, SmallViews(), Stats(3));
  ASSERT_TRUE(a.ok());
  std::vector<MultiCropBatch> run;
  std::string saved;
  for (int i = 0; i < 8; ++i) {  // 5 steps per epoch: crosses into epoch 1
    if (i == 3) saved = EncodeLoaderState((*a)->position(), o, ds->size());
    auto batch = (*a)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    run.push_back(*std::move(batch));
  }
  // Different epochs give different orders; different steps different views.
  EXPECT_FALSE(torch::equal(run[0].indices, run[5].indices));

  // A fresh loader (other thread count and depth) resumed from the saved bytes.
  LoaderOptions o2 = o;
  o2.threads = 1;
  o2.prefetch_depth = 1;
  auto b = Loader::Create(ds, o2, SmallViews(), Stats(3));
  ASSERT_TRUE(b.ok());
  auto position = DecodeLoaderState(saved, o2, ds->size());
  ASSERT_TRUE(position.ok()) << position.status();
  EXPECT_EQ(*position, (LoaderPosition{0, 3}));
  ASSERT_TRUE((*b)->Seek(*position).ok());
  for (int i = 3; i < 8; ++i) {
    auto batch = (*b)->Next();
    ASSERT_TRUE(batch.ok());
    ExpectSameBatch(*batch, run[i]);
  }
  // Seeking back replays, and BuildBatch gives the same batch synchronously.
  ASSERT_TRUE((*b)->Seek({0, 1}).ok());
  ExpectSameBatch(*(*b)->Next(), run[1]);
  ExpectSameBatch(*(*b)->BuildBatch({1, 2}), run[7]);

  // Another rank sees other samples and other views.
  LoaderOptions other = o;
  other.rank = 1;
  auto c = Loader::Create(ds, other, SmallViews(), Stats(3));
  auto first = (*c)->Next();
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(torch::equal(first->indices, run[0].indices));

  // State written for other options is refused.
  EXPECT_EQ(DecodeLoaderState(saved, other, ds->size()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecodeLoaderState("garbage", o, ds->size()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*b)->Seek({0, 5}).code(), absl::StatusCode::kOutOfRange);
}

// A dataset whose image 7 cannot be read.
class FailingDataset final : public Dataset {
 public:
  int64_t size() const override { return 16; }
  int64_t channels() const override { return 1; }
  int64_t height() const override { return 8; }
  int64_t width() const override { return 8; }
  absl::StatusOr<torch::Tensor> GetImage(int64_t index) const override {
    if (index == 7) return absl::FailedPreconditionError("fake: image 7 is unreadable");
    return torch::full({1, 8, 8}, index, torch::kUInt8);
  }
  bool has_labels() const override { return false; }
  std::optional<int64_t> Label(int64_t) const override { return std::nullopt; }
  int64_t num_classes() const override { return 0; }
  std::string name() const override { return "fake"; }
};

TEST(LoaderTest, DatasetErrorsReachTheConsumerAndUnlabelledGivesMinusOne) {
  LoaderOptions o;
  o.batch_size = 16;
  auto loader = Loader::Create(std::make_shared<FailingDataset>(), o,
                               AugmentOptions::ForResolution(8, 1), Stats(1));
  ASSERT_TRUE(loader.ok()) << loader.status();
  auto batch = (*loader)->Next();
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(batch.status().message().find("image 7"), std::string::npos);
  EXPECT_EQ((*loader)->Next().status().code(), absl::StatusCode::kFailedPrecondition);

  o.batch_size = 4;
  auto small = Loader::Create(std::make_shared<FailingDataset>(), o,
                              AugmentOptions::ForResolution(8, 1), Stats(1));
  ASSERT_TRUE(small.ok());
  for (int64_t step = 0; step < 4; ++step) {
    auto b = (*small)->BuildBatch({0, step});
    if (!b.ok()) continue;  // the batch holding image 7
    EXPECT_TRUE(torch::equal(b->labels, torch::full({4}, -1, torch::kInt64)));
  }
}

TEST(LoaderTest, RejectsBadOptions) {
  auto ds = Synthetic(10);
  LoaderOptions o;
  o.batch_size = 0;
  EXPECT_EQ(Loader::Create(ds, o, SmallViews(), Stats(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.batch_size = 8;
  o.world_size = 2;  // 5 per rank: no full batch of 8
  EXPECT_EQ(Loader::Create(ds, o, SmallViews(), Stats(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = LoaderOptions();
  o.rank = 1;  // world size 1
  EXPECT_EQ(Loader::Create(ds, o, SmallViews(), Stats(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = LoaderOptions();
  o.batch_size = 2;
  EXPECT_EQ(Loader::Create(ds, o, SmallViews(), Stats(3)).status().code(),
            absl::StatusCode::kInvalidArgument);  // 3-channel stats for 1-channel data
}

}  // namespace
}  // namespace dino::data
