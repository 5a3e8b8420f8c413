// Spec files: YAML/JSON -> JobSpec, the table of bad specs with their messages, --set overrides,
// and every example in examples/ parsing.
#include "spec/spec_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/file_system.h"

namespace dino::spec {
namespace {

using ::testing::HasSubstr;

constexpr char kGood[] = R"(name: demo
labels:
  team: vision
model:
  preset: custom
  dim: 192
  mlp_ratio: 4.5
data:
  kind: DATASET_KIND_SYNTHETIC
optim:
  batchSizePerRank: 32   # the JSON name works too
  bf16: true
seed: 18446744073709551615
)";

TEST(SpecFileTest, ParsesYamlIntoJobSpec) {
  auto spec = ParseJobSpec(kGood, "good.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "demo");
  EXPECT_EQ(spec->labels().at("team"), "vision");
  EXPECT_EQ(spec->model().preset(), "custom");
  EXPECT_EQ(spec->model().dim(), 192);
  EXPECT_DOUBLE_EQ(spec->model().mlp_ratio(), 4.5);
  EXPECT_EQ(spec->data().kind(), dino::v1::DATASET_KIND_SYNTHETIC);
  EXPECT_EQ(spec->optim().batch_size_per_rank(), 32);
  EXPECT_TRUE(spec->optim().bf16());
  EXPECT_EQ(spec->seed(), 18446744073709551615ull);
  // Unset optional fields stay unset, so the coordinator applies its defaults.
  EXPECT_FALSE(spec->optim().has_epochs());
  EXPECT_FALSE(spec->has_request_id());
}

TEST(SpecFileTest, ParsesJsonLikeYaml) {
  auto spec = ParseJobSpec(
      R"({"name": "j", "optim": {"lr": 0.0005, "epochs": 3}, "data": {"kind": "DATASET_KIND_IDX",
          "path": "/d/train.gz"}, "requestId": "abc"})",
      "spec.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->optim().epochs(), 3);
  EXPECT_DOUBLE_EQ(spec->optim().lr(), 0.0005);
  EXPECT_EQ(spec->data().path(), "/d/train.gz");
  EXPECT_EQ(spec->request_id(), "abc");
}

TEST(SpecFileTest, KeepsEveryDigitOfADouble) {
  auto spec = ParseJobSpec("optim:\n  lr: 0.00012345678901234567\n", "s.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->optim().lr(), 0.00012345678901234567);
}

struct BadSpec {
  std::string name;
  std::string text;
  std::string message;  // Expected in full.
};

void PrintTo(const BadSpec& spec, std::ostream* os) { *os << spec.name; }

class BadSpecTest : public ::testing::TestWithParam<BadSpec> {};

TEST_P(BadSpecTest, IsRejectedWithPathAndLine) {
  auto spec = ParseJobSpec(GetParam().text, "bad.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(spec.status().message()), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadSpecTest,
    ::testing::Values(
        BadSpec{"UnknownTopLevelKey", "name: x\nepoch: 3\n",
                "bad.yaml:2: epoch: unknown key (JobSpec has no field \"epoch\")"},
        BadSpec{"UnknownNestedKey", "optim:\n  lr: 0.1\n  batch_size: 8\n",
                "bad.yaml:3: optim.batch_size: unknown key (OptimSpec has no field "
                "\"batch_size\")"},
        BadSpec{"WrongTypeInteger", "optim:\n  epochs: many\n",
                "bad.yaml:2: optim.epochs: expected an integer, got \"many\""},
        BadSpec{"FractionForInteger", "optim:\n  epochs: 2.5\n",
                "bad.yaml:2: optim.epochs: expected an integer, got \"2.5\""},
        BadSpec{"WrongTypeNumber", "\n\ndino:\n  teacher_temp: warm\n",
                "bad.yaml:4: dino.teacher_temp: expected a number, got \"warm\""},
        BadSpec{"WrongTypeBool", "optim:\n  bf16: maybe\n",
                "bad.yaml:2: optim.bf16: expected true or false, got \"maybe\""},
        BadSpec{"MapWhereScalar", "model:\n  dim:\n    x: 1\n",
                "bad.yaml:3: model.dim: expected int64, got a map"},
        BadSpec{"ScalarWhereMessage", "model: vit_small\n",
                "bad.yaml:1: model: expected a map (ModelSpec), got \"vit_small\""},
        BadSpec{"ListWhereMap", "labels:\n  - a\n  - b\n",
                "bad.yaml:2: labels: expected a map, got a list"},
        BadSpec{"UnknownEnum", "data:\n  kind: CSV\n",
                "bad.yaml:2: data.kind: unknown value \"CSV\"; expected one of "
                "DATASET_KIND_IDX, DATASET_KIND_IMAGE_FOLDER, DATASET_KIND_SYNTHETIC"},
        BadSpec{"Int32OutOfRange", "priority: 3000000000\n",
                "bad.yaml:1: priority: out of range for int32: 3000000000"},
        BadSpec{"NegativeUnsigned", "seed: -1\n",
                "bad.yaml:1: seed: expected a non-negative integer, got \"-1\""},
        BadSpec{"InfinityIsNotANumber", "optim:\n  lr: .inf\n",
                "bad.yaml:2: optim.lr: expected a number, got \".inf\""},
        BadSpec{"NullValue", "name:\n", "bad.yaml:1: name: has no value"},
        BadSpec{"NotAMap", "- a\n- b\n",
                "bad.yaml:1: spec: expected a map of JobSpec fields, got a list"},
        BadSpec{"Empty", "", "bad.yaml: the spec is empty"},
        BadSpec{"BadSyntax", "optim:\n  lr: [0.1\n",
                "bad.yaml:3: not valid YAML or JSON: end of sequence flow not found"}),
    [](const ::testing::TestParamInfo<BadSpec>& info) { return info.param.name; });

TEST(SpecFileTest, SetOverridesAndAddsFields) {
  auto spec = ParseJobSpec(
      kGood, "good.yaml",
      {"optim.batch_size_per_rank=64", "optim.lr=0.002", "labels.app.kubernetes.io/name=dino",
       "name=renamed", "checkpoint.keep_last=5", "data.kind=DATASET_KIND_IDX"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->optim().batch_size_per_rank(), 64);
  EXPECT_DOUBLE_EQ(spec->optim().lr(), 0.002);
  EXPECT_TRUE(spec->optim().bf16());  // Untouched siblings stay.
  EXPECT_EQ(spec->labels().at("team"), "vision");
  EXPECT_EQ(spec->labels().at("app.kubernetes.io/name"), "dino");  // Dots in a map key.
  EXPECT_EQ(spec->name(), "renamed");
  EXPECT_EQ(spec->checkpoint().keep_last(), 5);
  EXPECT_EQ(spec->data().kind(), dino::v1::DATASET_KIND_IDX);
}

TEST(SpecFileTest, SetRejectsUnknownKeysAndBadValuesNamingTheFlag) {
  auto unknown = ParseJobSpec(kGood, "good.yaml", {"optim.learning_rate=0.1"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(std::string(unknown.status().message()),
            "--set optim.learning_rate: optim.learning_rate: unknown key (OptimSpec has no "
            "field \"learning_rate\")");
  auto bad_value = ParseJobSpec(kGood, "good.yaml", {"optim.epochs=ten"});
  ASSERT_FALSE(bad_value.ok());
  EXPECT_EQ(std::string(bad_value.status().message()),
            "--set optim.epochs: optim.epochs: expected an integer, got \"ten\"");
  auto into_scalar = ParseJobSpec(kGood, "good.yaml", {"name.first=x"});
  ASSERT_FALSE(into_scalar.ok());
  EXPECT_THAT(into_scalar.status().message(), HasSubstr("not a message"));
  auto no_equals = ParseJobSpec(kGood, "good.yaml", {"optim.lr"});
  ASSERT_FALSE(no_equals.ok());
  EXPECT_THAT(no_equals.status().message(), HasSubstr("expected key.path=value"));
}

TEST(SpecFileTest, SetWorksOnAnEmptyFile) {
  auto spec = ParseJobSpec("", "empty.yaml", {"data.kind=DATASET_KIND_SYNTHETIC"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->data().kind(), dino::v1::DATASET_KIND_SYNTHETIC);
}

// JobSpec's strings are proto3 `string`s: invalid UTF-8 anywhere is INVALID_ARGUMENT naming the
// place, never a bare protobuf parse failure.
TEST(SpecFileTest, InvalidUtf8IsInvalidArgumentNamingThePlace) {
  auto expect_invalid = [](const absl::StatusOr<dino::v1::JobSpec>& spec, const std::string& text) {
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(text));
  };
  expect_invalid(
      ParseJobSpec("model:\n  preset: cus\xfftom\n", "bad.yaml"),
      "bad.yaml:2:14: not valid UTF-8 (byte 0xFF at offset 20); spec files must be UTF-8");
  expect_invalid(ParseJobSpec("{\"name\": \"a\xc0\xaf"
                              "b\"}",
                              "bad.json"),
                 "bad.json:1:12: not valid UTF-8 (byte 0xC0 at offset 11)");
  expect_invalid(ParseJobSpec("labels:\n  \xed\xa0\x80: x\n", "surrogate.yaml"),
                 "surrogate.yaml:2:3: not valid UTF-8 (byte 0xED");
  // An escape that would decode to a lone surrogate is refused by the YAML/JSON reader itself.
  expect_invalid(ParseJobSpec("{\"name\": \"a\\udc80\"}", "escape.json"),
                 "escape.json:1: not valid YAML or JSON: invalid unicode");
  expect_invalid(ParseJobSpec(kGood, "good.yaml", {"name=x\xff"}),
                 "--set name: not valid UTF-8 (byte 0xFF at offset 6)");
  expect_invalid(ParseJobSpec(kGood, "good.yaml", {"na\xffme=x"}), "--set: not valid UTF-8");
  // Valid multi-byte text still parses.
  auto ok = ParseJobSpec("name: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x95\"\n", "ok.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->name(), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x95");
}

TEST(SpecFileTest, MissingFileIsReported) {
  auto spec = LoadJobSpecFile(DefaultFileSystem(), "/nonexistent/spec.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("/nonexistent/spec.yaml"));
}

std::string SourceRoot() {
  const char* root = std::getenv("DINO_SOURCE_ROOT");
  return root != nullptr ? root : ".";
}

TEST(ExamplesTest, EveryExampleParses) {
  for (const std::string name : {"fashion-mnist.yaml", "fashion-mnist-gpu.yaml",
                                 "imagenet-vit-small16.yaml", "python/synthetic-tiny.json"}) {
    auto spec = LoadJobSpecFile(DefaultFileSystem(), SourceRoot() + "/examples/" + name);
    ASSERT_TRUE(spec.ok()) << name << ": " << spec.status();
    EXPECT_FALSE(spec->name().empty()) << name;
    EXPECT_NE(spec->data().kind(), dino::v1::DATASET_KIND_UNSPECIFIED) << name;
  }
}

TEST(ExamplesTest, FashionMnistIsTheSmallCpuViT) {
  auto spec = LoadJobSpecFile(DefaultFileSystem(), SourceRoot() + "/examples/fashion-mnist.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model().preset(), "custom");
  EXPECT_EQ(spec->model().dim(), 64);
  EXPECT_EQ(spec->model().depth(), 4);
  EXPECT_EQ(spec->model().heads(), 2);
  EXPECT_EQ(spec->model().patch_size(), 7);
  EXPECT_EQ(spec->model().in_channels(), 1);
  EXPECT_EQ(spec->head().out_dim(), 1024);
  EXPECT_EQ(spec->head().hidden_dim(), 512);
  EXPECT_EQ(spec->head().bottleneck_dim(), 128);
  EXPECT_EQ(spec->augmentation().global_crop_size(), 28);
  EXPECT_EQ(spec->augmentation().local_crop_size(), 14);
  EXPECT_EQ(spec->augmentation().n_local_crops(), 4);
  EXPECT_EQ(spec->optim().batch_size_per_rank(), 128);
  EXPECT_EQ(spec->optim().epochs(), 9);
  EXPECT_DOUBLE_EQ(spec->optim().lr(), 0.002);
  EXPECT_EQ(spec->optim().warmup_epochs(), 1);
  EXPECT_EQ(spec->optim().freeze_last_layer(), 9);
  EXPECT_DOUBLE_EQ(spec->augmentation().local_crop_scale_min(), 0.14);
  EXPECT_DOUBLE_EQ(spec->model().drop_path_rate(), 0);
  EXPECT_DOUBLE_EQ(spec->dino().teacher_temp(), 0.04);
  EXPECT_DOUBLE_EQ(spec->dino().warmup_teacher_temp(), 0.04);
  EXPECT_EQ(spec->dino().warmup_teacher_temp_epochs(), 0);
  EXPECT_DOUBLE_EQ(spec->dino().momentum_teacher(), 0.99);
  EXPECT_THAT(spec->data().eval_path(), HasSubstr("t10k-images"));
  // The dataset files the example names exist on this machine.
  EXPECT_TRUE(DefaultFileSystem()->Exists(spec->data().path())) << spec->data().path();
  EXPECT_TRUE(DefaultFileSystem()->Exists(spec->data().eval_labels_path()));
}

}  // namespace
}  // namespace dino::spec
