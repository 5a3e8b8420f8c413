#include "tests/worker/dino/test_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>

#include "absl/strings/str_cat.h"

namespace dino::testing {

TrainConfig TinyConfig() {
  TrainConfig c;
  c.model.preset = "custom";
  c.model.dim = 16;
  c.model.depth = 2;
  c.model.heads = 2;
  c.model.patch_size = 4;
  c.model.image_size = 16;
  c.model.in_channels = 3;
  c.model.drop_path_rate = 0.0;
  c.head.out_dim = 64;
  c.head.hidden_dim = 32;
  c.head.bottleneck_dim = 8;
  c.head.nlayers = 3;
  c.crops.global_crop_size = 16;
  c.crops.local_crop_size = 8;
  c.crops.n_local_crops = 2;
  c.optim.batch_size_per_rank = 4;
  c.optim.epochs = 3;
  c.optim.warmup_epochs = 1;
  c.optim.lr = 0.64;  // Scaled by 4/256: 0.01, large enough for visible updates.
  c.steps_per_epoch = 2;
  c.dino.warmup_teacher_temp_epochs = 2;
  c.dino.momentum_teacher = 0.9;
  c.threads = 1;
  c.seed = 3;
  return c;
}

std::vector<torch::Tensor> MakeCrops(const TrainConfig& config, int64_t step, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed * 1000003ULL + static_cast<uint64_t>(step));
  std::vector<torch::Tensor> crops;
  const int64_t b = config.optim.batch_size_per_rank, c = config.model.in_channels;
  for (int64_t i = 0; i < config.n_crops(); ++i) {
    const int64_t s = i < 2 ? config.crops.global_crop_size : config.crops.local_crop_size;
    crops.push_back(at::randn({b, c, s, s}, gen, torch::TensorOptions().dtype(torch::kFloat)));
  }
  return crops;
}

void WriteDict(const std::string& path, const TensorDict& dict) {
  c10::Dict<std::string, torch::Tensor> d;
  for (const auto& [k, v] : dict) d.insert(k, v.detach().to(torch::kCPU).contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(d));
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "writing " << path;
}

TensorDict ReadDict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TensorDict out;
  if (bytes.empty()) {
    ADD_FAILURE() << "cannot read " << path;
    return out;
  }
  c10::IValue value = torch::pickle_load(bytes);
  for (const auto& item : value.toGenericDict()) {
    out[item.key().toStringRef()] = item.value().toTensor();
  }
  return out;
}

torch::Tensor StringTensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  for (size_t i = 0; i < s.size(); ++i) t[static_cast<int64_t>(i)] = static_cast<uint8_t>(s[i]);
  return t;
}

void AddConfig(const TrainConfig& c, TensorDict* d) {
  auto i = [&](const char* key, int64_t v) { (*d)[absl::StrCat("cfg.", key)] = torch::tensor(v); };
  auto f = [&](const char* key, double v) {
    (*d)[absl::StrCat("cfg.", key)] = torch::tensor(v, torch::kDouble);
  };
  i("image_size", c.model.image_size);
  i("patch_size", c.model.patch_size);
  i("in_channels", c.model.in_channels);
  i("dim", c.model.dim);
  i("depth", c.model.depth);
  i("heads", c.model.heads);
  f("mlp_ratio", c.model.mlp_ratio);
  i("out_dim", c.head.out_dim);
  i("hidden_dim", c.head.hidden_dim);
  i("bottleneck_dim", c.head.bottleneck_dim);
  i("nlayers", c.head.nlayers);
  i("norm_last_layer", c.head.norm_last_layer ? 1 : 0);
  i("epochs", c.optim.epochs);
  i("steps_per_epoch", c.steps_per_epoch);
  i("global_batch", c.global_batch());
  f("lr", c.optim.lr);
  f("min_lr", c.optim.min_lr);
  i("warmup_epochs", c.optim.warmup_epochs);
  f("weight_decay", c.optim.weight_decay);
  f("weight_decay_end", c.optim.weight_decay_end);
  f("clip_grad", c.optim.clip_grad);
  i("freeze_last_layer", c.optim.freeze_last_layer);
  f("momentum_teacher", c.dino.momentum_teacher);
  f("student_temp", c.dino.student_temp);
  f("teacher_temp", c.dino.teacher_temp);
  f("warmup_teacher_temp", c.dino.warmup_teacher_temp);
  i("warmup_teacher_temp_epochs", c.dino.warmup_teacher_temp_epochs);
  f("center_momentum", c.dino.center_momentum);
}

void AddWeights(const torch::nn::Module& module, TensorDict* dict, const std::string& prefix) {
  for (const auto& p : module.named_parameters()) {
    (*dict)[prefix + p.key()] = p.value().detach().to(torch::kCPU).clone();
  }
  for (const auto& b : module.named_buffers()) {
    (*dict)[prefix + b.key()] = b.value().detach().to(torch::kCPU).clone();
  }
}

TensorDict TrainerState(Trainer& trainer) {
  TensorDict d;
  AddWeights(*trainer.student(), &d, "student.");
  AddWeights(*trainer.teacher(), &d, "teacher.");
  d["center"] = trainer.center().clone();
  return d;
}

std::string MakeTempDir(const std::string& tag) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/dino_", tag, "_XXXXXX");
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  const char* dir = mkdtemp(buf.data());
  EXPECT_NE(dir, nullptr) << "mkdtemp " << pattern;
  return dir != nullptr ? std::string(dir) : std::string("/tmp");
}

int RunReference(const std::string& dir, std::string* log) {
  const char* root = std::getenv("DINO_SOURCE_ROOT");
  const std::string script =
      absl::StrCat(root != nullptr ? root : ".", "/tests/worker/dino/reference_dino.py");
  const std::string cmd = absl::StrCat("/usr/bin/python3 ", script, " ", dir, " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) log->append(buf, n);
  return pclose(pipe);
}

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || !a.sizes().equals(b.sizes())) {
    return std::numeric_limits<double>::infinity();
  }
  if (a.numel() == 0) return 0.0;
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace dino::testing
