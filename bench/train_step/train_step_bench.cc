// bench_train_step: the full DINO training step (teacher forward, student forward over all crops,
// loss, backward, per-parameter clipping, AdamW, EMA, center) through dino::Trainer::Step.
//
// Configurations:
//   tiny28   vit_tiny, patch 4, 28 px, 1 channel, 2x28 + 6x12 crops, batch 64, default head
//   small224 vit_small, patch 16, 224 px, 3 channels, 2x224 + 8x96 crops, batch 32, default head
// on the CPU (all cores, fp32) and, when a CUDA device is visible, on cuda:0 with bf16 autocast
// (small224 with --gpu_batch_small images per step, default 128, so that the GPU is busy).
// Counters: images_per_s, GFLOP_per_s and peak_rss_MiB (VmHWM); on CUDA also MFU_percent, the
// model FLOP/s against the device's dense bf16 peak (peak_TFLOP_per_s: from the table in
// BF16PeakTflops for the GPUs it names, or --peak_tflops=N; 0 and no MFU when unknown). Model
// FLOPs per step:
//   3 x student forward (forward + backward ~ 2 x forward) + 1 x teacher forward on 2 globals,
// each = backbone (BackboneForwardFlops per crop) + head (HeadForwardFlops per feature row).
// bench/compare_pytorch_step.py runs the same model and step in PyTorch for the ratio.
//
// Flags (before Google Benchmark's own): --cpu_iters_tiny=N (default 4),
// --cpu_iters_small=N (default 2), --gpu_iters=N (default 20), --gpu_batch_small=N (default 128),
// --peak_tflops=N (default 0: from the device name), --threads=N (intra-op threads,
// default 0 = all cores). The CPU column is the whole process's CPU time per step (all threads),
// which stays comparable with compare_pytorch_step.py's on a machine shared with other work.
// The "blas" context line names OpenBLAS's kernels (worker/dino/blas_kernels.h): compare runs
// with OPENBLAS_CORETYPE unset and set to Haswell for the AVX-512 and AVX2 kernels.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/dino/blas_kernels.h"
#include "worker/dino/collectives.h"
#include "worker/dino/multicrop.h"
#include "worker/dino/trainer.h"

#if defined(DINO_WITH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#endif

namespace {

struct BenchCase {
  std::string name;
  dino::TrainConfig config;
  int64_t iterations;
  double peak_tflops = 0;  // the device's dense bf16 peak; 0: no MFU counter
};

dino::TrainConfig Tiny28() {
  dino::TrainConfig c;
  c.model.preset = "vit_tiny";
  c.model.patch_size = 4;
  c.model.image_size = c.crops.global_crop_size = 28;
  c.model.in_channels = 1;
  c.crops.local_crop_size = 12;
  c.crops.n_local_crops = 6;
  c.optim.batch_size_per_rank = 64;
  c.steps_per_epoch = 1000;
  return c;
}

dino::TrainConfig Small224() {
  dino::TrainConfig c;
  c.model.preset = "vit_small";
  c.model.patch_size = 16;
  c.model.image_size = c.crops.global_crop_size = 224;
  c.crops.local_crop_size = 96;
  c.crops.n_local_crops = 8;
  c.optim.batch_size_per_rank = 32;
  c.steps_per_epoch = 1000;
  return c;
}

double StepFlops(dino::TrainConfig c) {
  if (!c.ApplyPreset().ok()) return 0;  // The preset sets dim/depth/heads, as Trainer::Create does.
  const double b = static_cast<double>(c.optim.batch_size_per_rank);
  const double head = dino::HeadForwardFlops(c.model, c.head);
  const double global = dino::BackboneForwardFlops(c.model, c.crops.global_crop_size) + head;
  const double local = dino::BackboneForwardFlops(c.model, c.crops.local_crop_size) + head;
  const double student = 2 * global + static_cast<double>(c.crops.n_local_crops) * local;
  return b * (3.0 * student + 2.0 * global);
}

double PeakRssMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      double kib = 0;
      if (absl::SimpleAtod(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kib)) {
        return kib / 1024.0;
      }
    }
  }
  return 0;
}

void RunTrainStep(benchmark::State& state, BenchCase bench) {
  dino::TrainConfig config = bench.config;
  dino::LocalCollectives collectives;
  dino::LocalGradientSync sync;
  auto trainer = dino::Trainer::Create(config, &collectives, &sync);
  if (!trainer.ok()) {
    state.SkipWithError(trainer.status().ToString().c_str());
    return;
  }
  const torch::Device device((*trainer)->device());
  std::vector<torch::Tensor> crops;
  torch::manual_seed(0);
  for (int64_t i = 0; i < config.n_crops(); ++i) {
    const int64_t s = i < 2 ? config.crops.global_crop_size : config.crops.local_crop_size;
    crops.push_back(torch::randn({config.optim.batch_size_per_rank, config.model.in_channels, s, s})
                        .to(device));
  }
  // One untimed step: first-touch allocations and the AdamW state.
  auto warm = (*trainer)->Step(crops);
  if (!warm.ok()) {
    state.SkipWithError(warm.status().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    auto r = (*trainer)->Step(crops);  // Step reads the loss on the host: it synchronises.
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
  }
  const double steps = static_cast<double>(state.iterations());
  state.counters["images_per_s"] = benchmark::Counter(
      steps * static_cast<double>(config.optim.batch_size_per_rank), benchmark::Counter::kIsRate);
  state.counters["GFLOP_per_s"] =
      benchmark::Counter(steps * StepFlops(config) / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP_per_step"] = StepFlops(config) / 1e9;
  state.counters["peak_rss_MiB"] = PeakRssMiB();
  state.counters["threads"] = static_cast<double>(torch::get_num_threads());
  if (bench.peak_tflops > 0) {
    state.counters["peak_TFLOP_per_s"] = bench.peak_tflops;
    state.counters["MFU_percent"] = benchmark::Counter(
        steps * StepFlops(config) / (bench.peak_tflops * 1e12) * 100.0, benchmark::Counter::kIsRate);
  }
}

// The name of CUDA device 0, or "" without one.
std::string CudaDeviceName() {
#if defined(DINO_WITH_CUDA)
  if (torch::cuda::is_available()) return at::cuda::getDeviceProperties(0)->name;
#endif
  return "";
}

// Dense (no sparsity) bf16 tensor-core peak in TFLOP/s of the GPUs we run on, from NVIDIA's data
// sheets (SXM parts); 0 for a GPU not listed here.
double BF16PeakTflops(const std::string& name) {
  const std::pair<const char*, double> table[] = {
      {"H200", 989.0}, {"H100 PCIe", 756.0}, {"H100", 989.0}, {"A100", 312.0}, {"L40S", 362.0}};
  for (const auto& [part, tflops] : table) {
    if (name.find(part) != std::string::npos) return tflops;
  }
  return 0.0;
}

int64_t FlagValue(int* argc, char** argv, const char* name, int64_t fallback) {
  const std::string prefix = absl::StrCat("--", name, "=");
  int64_t value = fallback;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      if (!absl::SimpleAtoi(argv[i] + prefix.size(), &value)) value = fallback;
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t tiny_iters = FlagValue(&argc, argv, "cpu_iters_tiny", 4);
  const int64_t small_iters = FlagValue(&argc, argv, "cpu_iters_small", 2);
  const int64_t gpu_iters = FlagValue(&argc, argv, "gpu_iters", 20);
  const int64_t gpu_batch_small = FlagValue(&argc, argv, "gpu_batch_small", 128);
  const int64_t peak_flag = FlagValue(&argc, argv, "peak_tflops", 0);
  const int64_t threads = FlagValue(&argc, argv, "threads", 0);
  const std::string gpu = CudaDeviceName();
  const double peak_tflops = peak_flag > 0 ? static_cast<double>(peak_flag) : BF16PeakTflops(gpu);
  std::vector<BenchCase> cases = {{"TrainStep/tiny28/cpu", Tiny28(), tiny_iters},
                                  {"TrainStep/small224/cpu", Small224(), small_iters}};
  if (torch::cuda::is_available()) {
    for (auto [name, config] : {std::pair{"tiny28", Tiny28()}, std::pair{"small224", Small224()}}) {
      config.device = "cuda:0";
      config.bf16 = true;
      if (std::string(name) == "small224") config.optim.batch_size_per_rank = gpu_batch_small;
      cases.push_back(
          {absl::StrCat("TrainStep/", name, "/cuda_bf16"), config, gpu_iters, peak_tflops});
    }
  }
  for (BenchCase& c : cases) {
    c.config.threads = threads;
    benchmark::RegisterBenchmark(c.name.c_str(), RunTrainStep, c)
        ->Iterations(c.iterations)
        ->Unit(benchmark::kMillisecond)
        ->MeasureProcessCPUTime()
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  const std::string blas = dino::BlasDescription(dino::CurrentBlasFacts());
  benchmark::AddCustomContext("blas", blas.empty() ? "not OpenBLAS" : blas);
  if (!gpu.empty()) {
    benchmark::AddCustomContext(
        "gpu", absl::StrCat(gpu, ", dense bf16 peak ",
                            peak_tflops > 0 ? absl::StrCat(peak_tflops, " TFLOP/s") : "unknown"));
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
