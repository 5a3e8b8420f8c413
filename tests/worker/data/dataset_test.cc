// Datasets: IDX (real Fashion-MNIST when installed, and small written files incl. corrupt ones),
// image folders built from generated JPEG/PNG files (incl. a corrupt file and an empty class),
// synthetic shapes, normalisation estimate.
#include "worker/data/dataset.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/worker/data/test_images.h"

namespace dino::data {
namespace {

namespace fs = std::filesystem;
using ::dino::data::testing::MakeTempDir;
using ::dino::data::testing::WriteBytes;
using ::dino::data::testing::WriteIdxImages;
using ::dino::data::testing::WriteIdxLabels;
using ::dino::data::testing::WriteJpeg;
using ::dino::data::testing::WritePng;

constexpr char kFashion[] = "/usr/share/datasets/fashion-mnist/";

torch::Tensor RandomImage(int64_t c, int64_t h, int64_t w, int64_t seed) {
  torch::manual_seed(seed);
  // Smooth content compresses well as JPEG and survives it nearly unchanged.
  auto small = torch::rand({1, c, 4, 4});
  auto big =
      torch::nn::functional::interpolate(small, torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{h, w})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false));
  return big.squeeze(0).mul(255).round().to(torch::kUInt8);
}

TEST(IdxDatasetTest, RealFashionMnist) {
  const std::string images = std::string(kFashion) + "train-images-idx3-ubyte.gz";
  if (!fs::exists(images)) GTEST_SKIP() << "Fashion-MNIST not installed at " << kFashion;
  auto ds = OpenIdxDataset(images, std::string(kFashion) + "train-labels-idx1-ubyte.gz");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 60000);
  EXPECT_EQ((*ds)->channels(), 1);
  EXPECT_EQ((*ds)->height(), 28);
  EXPECT_EQ((*ds)->width(), 28);
  EXPECT_EQ((*ds)->num_classes(), 10);
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < (*ds)->size(); ++i) {
    auto label = (*ds)->Label(i);
    ASSERT_TRUE(label.has_value());
    ASSERT_GE(*label, 0);
    ASSERT_LT(*label, 10);
    ++counts[*label];
  }
  for (int64_t c : counts) EXPECT_EQ(c, 6000);  // Fashion-MNIST's train split is balanced
  auto image = (*ds)->GetImage(59999);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->sizes(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(image->scalar_type(), torch::kUInt8);
  EXPECT_GT(image->max().item<int>(), 0);

  auto test = OpenIdxDataset(std::string(kFashion) + "t10k-images-idx3-ubyte.gz",
                             std::string(kFashion) + "t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ((*test)->size(), 10000);

  auto stats = EstimateNormalization(**ds, 2000);
  ASSERT_TRUE(stats.ok()) << stats.status();
  // Fashion-MNIST's well-known statistics: mean 0.286, std 0.353.
  EXPECT_NEAR(stats->mean[0], 0.286, 0.01);
  EXPECT_NEAR(stats->std[0], 0.353, 0.01);
}

TEST(IdxDatasetTest, WrittenRawAndGzipFilesRoundTrip) {
  const std::string dir = MakeTempDir("idx_roundtrip");
  auto images = torch::randint(0, 256, {5, 7, 6}, torch::kUInt8);
  auto labels = torch::tensor({3, 0, 1, 4, 2}, torch::kUInt8);
  for (const std::string suffix : {"", ".gz"}) {
    ASSERT_TRUE(WriteIdxImages(dir + "/img" + suffix, images));
    ASSERT_TRUE(WriteIdxLabels(dir + "/lab" + suffix, labels));
    auto ds = OpenIdxDataset(dir + "/img" + suffix, dir + "/lab" + suffix);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ((*ds)->size(), 5);
    EXPECT_EQ((*ds)->height(), 7);
    EXPECT_EQ((*ds)->width(), 6);
    EXPECT_EQ((*ds)->num_classes(), 5);
    for (int64_t i = 0; i < 5; ++i) {
      EXPECT_TRUE(torch::equal(*(*ds)->GetImage(i), images[i].unsqueeze(0)));
      EXPECT_EQ((*ds)->Label(i), labels[i].item<int64_t>());
    }
    EXPECT_EQ((*ds)->GetImage(5).status().code(), absl::StatusCode::kOutOfRange);
  }
  auto unlabelled = OpenIdxDataset(dir + "/img");
  ASSERT_TRUE(unlabelled.ok());
  EXPECT_FALSE((*unlabelled)->has_labels());
  EXPECT_EQ((*unlabelled)->num_classes(), 0);
  EXPECT_FALSE((*unlabelled)->Label(0).has_value());
}

TEST(IdxDatasetTest, BadFilesNameTheFileAndReason) {
  const std::string dir = MakeTempDir("idx_bad");
  auto images = torch::zeros({4, 3, 3}, torch::kUInt8);
  ASSERT_TRUE(WriteIdxImages(dir + "/good", images));

  auto missing = OpenIdxDataset(dir + "/missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir + "/missing"), std::string::npos);

  // Labels file given as images: wrong magic.
  ASSERT_TRUE(WriteIdxLabels(dir + "/labels", torch::zeros({4}, torch::kUInt8)));
  auto magic = OpenIdxDataset(dir + "/labels");
  EXPECT_EQ(magic.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(magic.status().message().find("magic"), std::string::npos) << magic.status();

  // Truncated data.
  std::string bytes;
  {
    std::ifstream in(dir + "/good", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_TRUE(WriteBytes(dir + "/truncated", bytes.substr(0, bytes.size() - 5)));
  auto truncated = OpenIdxDataset(dir + "/truncated");
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos);
  ASSERT_TRUE(WriteBytes(dir + "/tiny", "\x00\x00"));
  EXPECT_EQ(OpenIdxDataset(dir + "/tiny").status().code(), absl::StatusCode::kDataLoss);

  // A gzip file cut short.
  ASSERT_TRUE(
      WriteIdxImages(dir + "/good.gz", torch::randint(0, 256, {50, 20, 20}, torch::kUInt8)));
  std::string gz;
  {
    std::ifstream in(dir + "/good.gz", std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_TRUE(WriteBytes(dir + "/cut", gz.substr(0, gz.size() / 2)));
  auto cut = OpenIdxDataset(dir + "/cut");
  EXPECT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find(dir + "/cut"), std::string::npos) << cut.status();

  // Label count mismatch.
  ASSERT_TRUE(WriteIdxLabels(dir + "/three", torch::zeros({3}, torch::kUInt8)));
  auto mismatch = OpenIdxDataset(dir + "/good", dir + "/three");
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("3 labels for 4 images"), std::string::npos);
}

TEST(ImageFolderTest, DecodesJpegAndPngWithLabelsCorruptFileAndEmptyClass) {
  const std::string root = MakeTempDir("folder");
  fs::create_directories(root + "/a_cats");
  fs::create_directories(root + "/b_empty");
  fs::create_directories(root + "/c_dogs");
  auto png_image = RandomImage(3, 40, 60, 1);
  auto jpg_image = RandomImage(3, 300, 400, 2);
  ASSERT_TRUE(WritePng(root + "/a_cats/0.png", png_image));
  ASSERT_TRUE(WriteJpeg(root + "/a_cats/1.jpg", jpg_image));
  ASSERT_TRUE(WriteJpeg(root + "/c_dogs/2.JPEG", RandomImage(3, 64, 64, 3)));
  ASSERT_TRUE(WriteBytes(root + "/c_dogs/3.jpg", "this is not a jpeg"));
  ASSERT_TRUE(WriteBytes(root + "/c_dogs/notes.txt", "ignored"));

  ImageFolderOptions options;
  options.max_short_side = 100;
  options.threads = 2;
  options.max_corrupt = 1;
  auto ds = OpenImageFolder(root, options);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 3);  // the corrupt file is skipped
  EXPECT_EQ((*ds)->corrupt_files(), 1);
  EXPECT_EQ((*ds)->channels(), 3);
  EXPECT_EQ((*ds)->num_classes(), 3);  // the empty class keeps its label
  EXPECT_EQ((*ds)->Label(0), 0);
  EXPECT_EQ((*ds)->Label(1), 0);
  EXPECT_EQ((*ds)->Label(2), 2);
  EXPECT_FALSE((*ds)->fixed_size());

  auto png = (*ds)->GetImage(0);  // short side 40 <= 100: native size, lossless
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_TRUE(torch::equal(*png, png_image));
  auto jpg = (*ds)->GetImage(1);  // 300x400 → short side 100
  ASSERT_TRUE(jpg.ok()) << jpg.status();
  EXPECT_EQ(jpg->sizes(), (std::vector<int64_t>{3, 100, 133}));
  auto expected = torch::nn::functional::interpolate(jpg_image.unsqueeze(0).to(torch::kFloat32),
                                                     torch::nn::functional::InterpolateFuncOptions()
                                                         .size(std::vector<int64_t>{100, 133})
                                                         .mode(torch::kBilinear)
                                                         .align_corners(false)
                                                         .antialias(true));
  EXPECT_LT((jpg->to(torch::kFloat32) - expected.squeeze(0)).abs().mean().item<double>(), 3.0);

  auto all = (*ds)->GetImages(std::vector<int64_t>{2, 0, 1});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(torch::equal((*all)[1], png_image));

  // Past the corrupt-file limit, opening fails and names a file.
  options.max_corrupt = 0;
  auto strict = OpenImageFolder(root, options);
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(strict.status().message().find("3.jpg"), std::string::npos) << strict.status();
}

TEST(ImageFolderTest, TruncatedFileIsSkippedInBatchesAndCountedUpToTheLimit) {
  const std::string root = MakeTempDir("folder_truncated");
  fs::create_directories(root + "/x");
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(WriteJpeg(root + "/x/" + std::to_string(i) + ".jpg", RandomImage(1, 32, 32, i)));
  }
  // A JPEG whose header is fine but whose data is cut: found only at decode time.
  std::string bytes;
  {
    std::ifstream in(root + "/x/1.jpg", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_TRUE(WriteBytes(root + "/x/1.jpg", bytes.substr(0, bytes.size() * 2 / 3)));
  ImageFolderOptions options;
  options.max_corrupt = 1;
  auto ds = OpenImageFolder(root, options);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->channels(), 1);
  ASSERT_EQ((*ds)->size(), 4);
  EXPECT_EQ((*ds)->GetImage(1).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ((*ds)->corrupt_files(), 1);
  auto batch = (*ds)->GetImages(std::vector<int64_t>{0, 1, 3});
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE(torch::equal((*batch)[1], *(*ds)->GetImage(2)));  // substituted by the next image
  EXPECT_EQ((*ds)->corrupt_files(), 1);                         // the same file counts once

  options.max_corrupt = 0;
  auto strict = OpenImageFolder(root, options);
  ASSERT_TRUE(strict.ok());
  auto failed = (*strict)->GetImages(std::vector<int64_t>{0, 1});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition) << failed.status();
  EXPECT_NE(failed.status().message().find("1.jpg"), std::string::npos) << failed.status();
}

// A one-channel image decodes into memory of its own: the decoder's pixel buffer is freed on
// return (a permuted 1-channel view counts as contiguous, so it was once returned as is).
TEST(ImageFolderTest, GrayscalePngDecodesExactly) {
  const std::string root = MakeTempDir("folder_gray");
  fs::create_directories(root + "/k");
  const torch::Tensor image = RandomImage(1, 16, 16, 9);
  ASSERT_TRUE(WritePng(root + "/k/0.png", image));
  auto ds = OpenImageFolder(root);
  ASSERT_TRUE(ds.ok()) << ds.status();
  auto decoded = (*ds)->GetImage(0);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(torch::equal(*decoded, image)) << *decoded;
}

// With the worker's --data-roots, a symlink inside the folder (a file, or a whole class folder)
// that resolves outside the roots is skipped and counted like a corrupt file; links that stay
// inside are read. Unconfined, all of them are read (what the check prevents).
TEST(ImageFolderTest, SymlinksEscapingTheDataRootsAreSkippedAndCounted) {
  const std::string base = MakeTempDir("folder_roots");
  const std::string root = base + "/data/set", outside = base + "/private";
  fs::create_directories(root + "/a");
  fs::create_directories(outside + "/secrets");
  ASSERT_TRUE(WritePng(root + "/a/0.png", RandomImage(1, 8, 8, 1)));
  ASSERT_TRUE(WritePng(root + "/a/1.png", RandomImage(1, 8, 8, 2)));
  ASSERT_TRUE(WritePng(outside + "/secret.png", RandomImage(1, 8, 8, 3)));
  ASSERT_TRUE(WritePng(outside + "/secrets/s.png", RandomImage(1, 8, 8, 4)));
  fs::create_symlink(outside + "/secret.png", root + "/a/2.png");   // Escapes.
  fs::create_symlink(root + "/a/0.png", root + "/a/3.png");         // Stays inside.
  fs::create_directory_symlink(outside + "/secrets", root + "/b");  // A class folder escapes.

  auto unconfined = OpenImageFolder(root);
  ASSERT_TRUE(unconfined.ok()) << unconfined.status();
  EXPECT_EQ((*unconfined)->size(), 5);

  absl::StatusOr<PathConfinement> roots = PathConfinement::Create({base + "/data"});
  ASSERT_TRUE(roots.ok()) << roots.status();
  ImageFolderOptions options;
  options.roots = *roots;
  auto ds = OpenImageFolder(root, options);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ((*ds)->size(), 3);  // a/0.png, a/1.png and a/3.png (-> a/0.png).
  EXPECT_EQ((*ds)->corrupt_files(), 2);
  EXPECT_EQ((*ds)->num_classes(), 2);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*ds)->Label(i), 0);
    ASSERT_TRUE((*ds)->GetImage(i).ok());
  }
  EXPECT_TRUE(torch::equal(*(*ds)->GetImage(0), *(*ds)->GetImage(2)));

  options.max_corrupt = 1;
  auto strict = OpenImageFolder(root, options);
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kFailedPrecondition) << strict.status();
  EXPECT_NE(strict.status().message().find("must lie under one of the data roots"),
            std::string::npos)
      << strict.status();
}

TEST(ImageFolderTest, BadFolders) {
  EXPECT_EQ(OpenImageFolder("/nonexistent/dino").status().code(), absl::StatusCode::kNotFound);
  const std::string empty = MakeTempDir("folder_empty");
  auto no_classes = OpenImageFolder(empty);
  EXPECT_EQ(no_classes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_classes.status().message().find(empty), std::string::npos);
  fs::create_directories(empty + "/only_empty_class");
  EXPECT_EQ(OpenImageFolder(empty).status().code(), absl::StatusCode::kInvalidArgument);

  const std::string mixed = MakeTempDir("folder_mixed");
  fs::create_directories(mixed + "/k");
  ASSERT_TRUE(WritePng(mixed + "/k/gray.png", RandomImage(1, 8, 8, 4)));
  ASSERT_TRUE(WritePng(mixed + "/k/rgb.png", RandomImage(3, 8, 8, 5)));
  auto status = OpenImageFolder(mixed).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("gray.png"), std::string::npos) << status;
  ImageFolderOptions convert;
  convert.channels = 3;
  auto converted = OpenImageFolder(mixed, convert);
  ASSERT_TRUE(converted.ok()) << converted.status();
  auto gray_as_rgb = (*converted)->GetImage(0);
  ASSERT_TRUE(gray_as_rgb.ok());
  EXPECT_EQ(gray_as_rgb->size(0), 3);
  EXPECT_TRUE(torch::equal((*gray_as_rgb)[0], (*gray_as_rgb)[2]));
}

TEST(SyntheticDatasetTest, DeterministicBySeedAndLabelled) {
  SyntheticOptions o;
  o.size = 50;
  o.channels = 3;
  o.resolution = 32;
  o.num_classes = 10;
  o.seed = 7;
  auto a = MakeSyntheticDataset(o);
  auto b = MakeSyntheticDataset(o);
  o.seed = 8;
  auto c = MakeSyntheticDataset(o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->num_classes(), 10);
  for (int64_t i : {0, 13, 49}) {
    auto x = (*a)->GetImage(i), y = (*b)->GetImage(i), z = (*c)->GetImage(i);
    ASSERT_TRUE(x.ok() && y.ok() && z.ok());
    EXPECT_EQ(x->sizes(), (std::vector<int64_t>{3, 32, 32}));
    EXPECT_TRUE(torch::equal(*x, *y));
    EXPECT_FALSE(torch::equal(*x, *z));
    EXPECT_EQ((*a)->Label(i), i % 10);
  }
  EXPECT_FALSE(torch::equal(*(*a)->GetImage(1), *(*a)->GetImage(11)));  // same class, other draw
  o.channels = 2;
  EXPECT_EQ(MakeSyntheticDataset(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OpenDatasetTest, DispatchesByKind) {
  DatasetSpec spec;
  spec.kind = DatasetKind::kSynthetic;
  spec.synthetic.size = 3;
  auto ds = OpenDataset(spec);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ((*ds)->size(), 3);
  spec.kind = DatasetKind::kUnspecified;
  EXPECT_EQ(OpenDataset(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dino::data
