// Multi-crop samples per second, in two configurations:
//   fmnist:   28 px, 1 channel, 2x28 + 6x12 views (batch 256);
//   imagenet: 256-px RGB images, 2x224 + 8x96 views (batch 32).
// BM_Augment times MultiCropAugmenter::Apply on a batch of decoded uint8 images (the work
// torchvision does per image in bench/compare_torchvision_augment.py); BM_Loader times the whole
// Loader (synthetic rendering + augmentation on its prefetch threads) as the trainer sees it.
// All CPU cores are used (at::set_num_threads) unless --threads=N says otherwise (compare with
// compare_torchvision_augment.py --workers N); CUDA variants run when a device is visible.
// The counter samples/s is what to compare; run with --benchmark_counters_tabular=true. On a
// machine shared with other work, OMP_WAIT_POLICY=PASSIVE keeps LibTorch's OpenMP threads from
// spin-waiting against the other load (it changed the figures here by 2-4x).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "worker/data/augment.h"
#include "worker/data/loader.h"

namespace dino::data {
namespace {

struct Config {
  int64_t resolution, channels, batch;
  AugmentOptions options;
};

Config MakeConfig(int which) {
  if (which == 0) return {28, 1, 256, AugmentOptions::ForResolution(28, 6)};
  return {256, 3, 32, AugmentOptions()};  // docs/dino.md defaults: 2x224 + 8x96
}

int g_threads = 0;  // --threads=N; 0: all cores

void SetThreads() {
  at::set_num_threads(g_threads > 0
                          ? g_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

void BM_Augment(benchmark::State& state) {
  SetThreads();
  const Config c = MakeConfig(static_cast<int>(state.range(0)));
  const bool cuda = state.range(1) == 1;
  if (cuda && !torch::cuda::is_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  SyntheticOptions so{c.batch, c.channels, c.resolution, 10, 1};
  auto ds = *MakeSyntheticDataset(so);
  std::vector<int64_t> idx(c.batch);
  for (int64_t i = 0; i < c.batch; ++i) idx[i] = i;
  auto images = *ds->GetImages(idx);
  NormalizationStats stats{std::vector<double>(c.channels, 0.5),
                           std::vector<double>(c.channels, 0.25)};
  auto aug = *MultiCropAugmenter::Create(c.options, stats, c.channels);
  const torch::Device device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  uint64_t seed = 0;
  if (!aug.Apply(images, seed++, device).ok()) {  // warm-up: first-call allocations and kernels
    state.SkipWithError("warm-up failed");
    return;
  }
  for (auto _ : state) {
    auto crops = aug.Apply(images, seed++, device);
    if (!crops.ok()) {
      state.SkipWithError(std::string(crops.status().message()).c_str());
      return;
    }
    if (cuda) torch::cuda::synchronize();
    benchmark::DoNotOptimize(crops->back().data_ptr());
  }
  state.counters["samples/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * c.batch), benchmark::Counter::kIsRate);
}

void BM_Loader(benchmark::State& state) {
  SetThreads();
  const Config c = MakeConfig(static_cast<int>(state.range(0)));
  SyntheticOptions so{4096, c.channels, c.resolution, 10, 1};
  std::shared_ptr<const Dataset> ds = *MakeSyntheticDataset(so);
  LoaderOptions lo;
  lo.batch_size = c.batch;
  lo.threads = 2;
  lo.prefetch_depth = 4;
  NormalizationStats stats{std::vector<double>(c.channels, 0.5),
                           std::vector<double>(c.channels, 0.25)};
  auto loader = *Loader::Create(ds, lo, c.options, stats);
  if (!loader->Next().ok()) {  // warm-up; the prefetch threads then run ahead
    state.SkipWithError("warm-up failed");
    return;
  }
  const double wait_before = loader->data_wait_seconds();
  for (auto _ : state) {
    auto batch = loader->Next();
    if (!batch.ok()) {
      state.SkipWithError(std::string(batch.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(batch->crops.back().data_ptr());
  }
  state.counters["samples/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * c.batch), benchmark::Counter::kIsRate);
  state.counters["wait_s"] = loader->data_wait_seconds() - wait_before;
}

// Args: {config (0 fmnist, 1 imagenet), cuda}.
BENCHMARK(BM_Augment)
    ->ArgNames({"imagenet", "cuda"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK(BM_Loader)
    ->ArgNames({"imagenet"})
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace
}  // namespace dino::data

// BENCHMARK_MAIN plus --threads=N (LibTorch intra-op threads of the augmentation).
int main(int argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      dino::data::g_threads = std::atoi(argv[i] + 10);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
