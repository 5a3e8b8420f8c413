// Export: the teacher backbone file loads in Python (torch.load, strict=True) into the reference-
// layout VisionTransformer of reference_dino.py and gives the C++ CLS features; the export made
// from a checkpoint equals the live one; Embed returns the L2-normalised features.
#include "worker/dino/export.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "common/file_system.h"
#include "tests/worker/dino/test_util.h"
#include "worker/dino/collectives.h"
#include "worker/dino/knn.h"
#include "worker/dino/trainer.h"

namespace dino {
namespace {

using testing::MaxAbsDiff;
using testing::TensorDict;

TEST(ExportTest, LoadsStrictlyIntoTheReferenceViTWithTheSameFeatures) {
  const TrainConfig config = testing::TinyConfig();
  LocalCollectives collectives;
  LocalGradientSync sync;
  auto trainer_or = Trainer::Create(config, &collectives, &sync);
  ASSERT_TRUE(trainer_or.ok()) << trainer_or.status();
  auto& trainer = *trainer_or;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(trainer->Step(testing::MakeCrops(config, i)).ok());

  const std::string dir = testing::MakeTempDir("export");
  const std::string path = dir + "/teacher_backbone.pth";
  ASSERT_TRUE(ExportTeacherBackbone(*trainer, DefaultFileSystem(), path).ok());

  torch::manual_seed(21);
  const auto images = torch::randn({5, 3, 16, 16});
  const auto local_images = torch::randn({5, 3, 8, 8});
  TensorDict d = {{"kind", testing::StringTensor("export")},
                  {"path_bytes", testing::StringTensor(path)},
                  {"in.images", images},
                  {"in.local_images", local_images}};
  testing::AddConfig(config, &d);
  testing::WriteDict(dir + "/export_in.pt", d);
  std::string log;
  ASSERT_EQ(testing::RunReference(dir, &log), 0) << log;
  TensorDict ref = testing::ReadDict(dir + "/export_out.pt");

  VisionTransformer backbone = trainer->teacher_backbone();
  torch::Tensor features, local_features;
  {
    torch::NoGradGuard no_grad;
    backbone->eval();
    features = backbone->forward(images);
    local_features = backbone->forward(local_images);
  }
  EXPECT_LE(MaxAbsDiff(features, ref["features"]), 1e-5);
  EXPECT_LE(MaxAbsDiff(local_features, ref["local_features"]), 1e-5);

  auto embedded = Embed(backbone, images, /*batch_size=*/2, torch::kCPU);
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  const auto normalized = ref["features"] / ref["features"].norm(2, {1}, true);
  EXPECT_LE(MaxAbsDiff(*embedded, normalized), 1e-5);

  // The export from a checkpoint holds the same tensors under the same reference names.
  auto ckpt = trainer->CheckpointBytes({});
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto from_ckpt = ExportTeacherBackboneFromCheckpoint(*ckpt, "in-memory");
  ASSERT_TRUE(from_ckpt.ok()) << from_ckpt.status();
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), dir + "/from_ckpt.pth", *from_ckpt).ok());
  TensorDict a = testing::ReadDict(path), b = testing::ReadDict(dir + "/from_ckpt.pth");
  for (const char* key : {"cls_token", "pos_embed", "patch_embed.proj.weight",
                          "blocks.0.norm1.weight", "blocks.1.attn.qkv.weight",
                          "blocks.1.attn.proj.bias", "blocks.0.mlp.fc1.weight", "norm.weight"}) {
    EXPECT_TRUE(a.count(key)) << key;
  }
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_EQ(MaxAbsDiff(v, b[k]), 0.0) << k;
}

}  // namespace
}  // namespace dino
