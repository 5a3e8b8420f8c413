#include "tests/worker/dist/dino_dist_test_util.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "tests/worker/dino/test_util.h"

namespace dino::dist::testing {

TrainConfig TinyDinoConfig(int64_t batch_per_rank, int64_t world_size) {
  // The core tests' tiny ViT, with the batch, world size and an lr of 0.02 for any batch.
  TrainConfig c = dino::testing::TinyConfig();
  c.optim.batch_size_per_rank = batch_per_rank;
  c.optim.epochs = 4;
  c.optim.warmup_epochs = 0;
  c.optim.lr = 0.64 * 8 / static_cast<double>(batch_per_rank * world_size);  // lr 0.02
  c.world_size = world_size;
  return c;
}

std::vector<torch::Tensor> MakeGlobalCrops(const TrainConfig& config, int64_t global_batch,
                                           int64_t step) {
  auto gen = at::detail::createCPUGenerator(7 * 1000003ULL + static_cast<uint64_t>(step));
  std::vector<torch::Tensor> crops;
  const int64_t c = config.model.in_channels;
  for (int64_t i = 0; i < config.n_crops(); ++i) {
    const int64_t s = i < 2 ? config.crops.global_crop_size : config.crops.local_crop_size;
    crops.push_back(at::randn({global_batch, c, s, s}, gen, torch::TensorOptions()));
  }
  return crops;
}

std::vector<torch::Tensor> RankSlice(const std::vector<torch::Tensor>& crops, int rank,
                                     int64_t per_rank) {
  std::vector<torch::Tensor> out;
  for (const auto& c : crops) out.push_back(c.narrow(0, rank * per_rank, per_rank).contiguous());
  return out;
}

namespace {

std::vector<torch::Tensor> CopyAll(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().to(torch::kCPU).clone());
  for (const auto& b : m.buffers()) out.push_back(b.detach().to(torch::kCPU).clone());
  return out;
}

void CopyInto(torch::nn::Module& m, const std::vector<torch::Tensor>& values) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& p : m.parameters()) p.copy_(values.at(i++));
  for (auto& b : m.buffers()) b.copy_(values.at(i++));
}

}  // namespace

TrainerState CaptureState(Trainer& trainer) {
  return TrainerState{CopyAll(*trainer.student()), CopyAll(*trainer.teacher()),
                      trainer.center().detach().to(torch::kCPU).clone()};
}

void RestoreWeights(Trainer& trainer, const TrainerState& state) {
  CopyInto(*trainer.student(), state.student);
  CopyInto(*trainer.teacher(), state.teacher);
}

std::vector<torch::Tensor> AgreementTensors(Trainer& trainer) {
  std::vector<torch::Tensor> out = trainer.StudentParameters();
  for (const auto& p : trainer.TeacherParameters()) out.push_back(p);
  out.push_back(trainer.center());
  return out;
}

double MaxAbsDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].sizes().equals(b[i].sizes())) return std::numeric_limits<double>::infinity();
    if (a[i].numel() == 0) continue;
    worst = std::max(
        worst, (a[i].to(torch::kFloat64) - b[i].to(torch::kFloat64)).abs().max().item<double>());
  }
  return worst;
}

bool BitIdentical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].sizes().equals(b[i].sizes()) || !torch::equal(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace dino::dist::testing
