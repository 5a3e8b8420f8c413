// bench_allreduce: what data parallelism costs and gains on this machine's CPU.
//
//   BM_GradientAllReduce/world:W     one blocking Gloo all-reduce of a buffer as large as the tiny
//                                    ViT's gradients (the communication of one step, no overlap)
//   BM_DinoStep/ranks:R/threads:T    full DINO training steps (Trainer over C10dCollectives and
//                                    BucketedGradientSync), R ranks as threads in this process,
//                                    T intra-op threads per rank, batch 16 per rank
//   BM_DinoStepCuda                  (DINO_WITH_CUDA builds only) 1 rank over NCCL, vit_small/16:
//                                    step time next to the NCCL all-reduce time of its gradients
//
// Counters: images_per_s (global images per wall second), exposed_allreduce_ms (FinishStep wall
// time per step: the all-reduce that backward did not hide), allreduce_span_ms (first bucket
// launch to all buckets reduced). Scaling efficiency = images_per_s(2 ranks) / (2 *
// images_per_s(1 rank)) at the same threads per rank; with 2 cores, 2 ranks x 1 thread use the
// whole machine as 1 rank x 2 threads does, so compare those two as well.
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "worker/dino/trainer.h"
#include "worker/dist/bucketed_gradient_sync.h"
#include "worker/dist/c10d_collectives.h"
#include "worker/dist/free_port.h"
#include "worker/dist/process_group.h"

namespace {

using dino::dist::BucketedGradientSync;
using dino::dist::C10dCollectives;
using dino::dist::CreateProcessGroup;
using dino::dist::DistOptions;
using dino::dist::ProcessGroupHandle;
using dino::dist::Rendezvous;

constexpr int64_t kBatchPerRank = 16;
constexpr int kWarmupSteps = 2;

// vit_tiny (dim 192, depth 12, 3 heads) on 32 px crops, patch 8, with a small head.
dino::TrainConfig BenchConfig(int world, int threads) {
  dino::TrainConfig c;
  c.model.preset = "vit_tiny";
  c.model.patch_size = 8;
  c.model.image_size = 32;
  c.model.drop_path_rate = 0.1;
  c.head.out_dim = 4096;
  c.head.hidden_dim = 512;
  c.head.bottleneck_dim = 128;
  c.crops.global_crop_size = 32;
  c.crops.local_crop_size = 16;
  c.crops.n_local_crops = 2;
  c.optim.batch_size_per_rank = kBatchPerRank;
  c.optim.epochs = 100;
  c.steps_per_epoch = 100;
  c.world_size = world;
  c.threads = threads;
  return c;
}

std::vector<torch::Tensor> Crops(const dino::TrainConfig& c, int rank, int64_t step) {
  auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(step * 131 + rank));
  std::vector<torch::Tensor> crops;
  for (int64_t i = 0; i < c.n_crops(); ++i) {
    const int64_t s = i < 2 ? c.crops.global_crop_size : c.crops.local_crop_size;
    crops.push_back(at::randn({kBatchPerRank, 3, s, s}, gen, torch::TensorOptions()));
  }
  return crops;
}

Rendezvous BenchRendezvous(int port, int rank, int world) {
  Rendezvous r;
  r.job_id = "bench";
  r.rank = rank;
  r.world_size = world;
  r.master_host = "127.0.0.1";
  r.master_port = port;
  return r;
}

DistOptions BenchOptions() {
  DistOptions o;
  o.timeout = absl::Seconds(120);
  o.gloo_bind_host = "127.0.0.1";
  return o;
}

// One rank: joins, builds the Trainer, runs `steps` steps (the benchmark loop drives rank 0).
struct Rank {
  std::unique_ptr<ProcessGroupHandle> group;
  std::unique_ptr<C10dCollectives> collectives;
  std::unique_ptr<BucketedGradientSync> sync;
  std::unique_ptr<dino::Trainer> trainer;
  dino::TrainConfig config;
  int64_t step = 0;

  bool Init(int port, int rank, int world, int threads) {
    auto g = CreateProcessGroup(BenchRendezvous(port, rank, world), BenchOptions());
    if (!g.ok()) return false;
    group = *std::move(g);
    collectives = std::make_unique<C10dCollectives>(group.get());
    sync = std::make_unique<BucketedGradientSync>(group.get());
    config = BenchConfig(world, threads);
    auto t = dino::Trainer::Create(config, collectives.get(), sync.get());
    if (!t.ok()) return false;
    trainer = *std::move(t);
    return true;
  }
  bool Step() { return trainer->Step(Crops(config, group->rank(), step++)).ok(); }
};

void BM_DinoStep(benchmark::State& state) {
  const int world = static_cast<int>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  auto port = dino::dist::PickFreeTcpPort();
  if (!port.ok()) return state.SkipWithError("no free port");
  const int64_t steps = kWarmupSteps + static_cast<int64_t>(state.max_iterations);
  std::atomic<bool> peer_ok{true};
  std::vector<std::thread> peers;
  for (int r = 1; r < world; ++r) {
    peers.emplace_back([&, r] {
      Rank rank;
      if (!rank.Init(*port, r, world, threads)) {
        peer_ok = false;
        return;
      }
      for (int64_t s = 0; s < steps && peer_ok; ++s) {
        if (!rank.Step()) peer_ok = false;
      }
    });
  }
  Rank rank0;
  bool ok = rank0.Init(*port, 0, world, threads);
  for (int s = 0; ok && s < kWarmupSteps; ++s) ok = rank0.Step();
  double exposed_ms = 0, span_ms = 0;
  for (auto _ : state) {
    if (!ok || !rank0.Step()) {
      ok = false;
      break;
    }
    const auto trace = rank0.sync->last_trace();
    exposed_ms += absl::ToDoubleMilliseconds(trace.reduced - trace.finish_step_called);
    if (!trace.launches.empty()) {
      span_ms += absl::ToDoubleMilliseconds(trace.reduced - trace.launches.front().at);
    }
  }
  for (auto& t : peers) t.join();
  if (!ok || !peer_ok) return state.SkipWithError("a rank failed");
  const double iters = static_cast<double>(state.iterations());
  state.counters["images_per_s"] =
      benchmark::Counter(iters * kBatchPerRank * world, benchmark::Counter::kIsRate);
  state.counters["exposed_allreduce_ms"] = exposed_ms / iters;
  state.counters["allreduce_span_ms"] = span_ms / iters;
  int64_t numel = 0;
  for (const auto& p : rank0.trainer->StudentParameters()) numel += p.numel();
  state.counters["grad_MB"] = static_cast<double>(numel) * 4 / (1 << 20);
}
BENCHMARK(BM_DinoStep)
    ->ArgNames({"ranks", "threads"})
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({2, 1})
    ->Iterations(8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The tiny ViT's gradient volume (student, trainable), all-reduced in one blocking call.
void BM_GradientAllReduce(benchmark::State& state) {
  const int world = static_cast<int>(state.range(0));
  int64_t numel = 0;
  {
    dino::LocalCollectives local;
    dino::LocalGradientSync sync;
    auto t = dino::Trainer::Create(BenchConfig(1, 1), &local, &sync);
    if (!t.ok()) return state.SkipWithError("trainer");
    for (const auto& p : (*t)->StudentParameters()) numel += p.numel();
  }
  auto port = dino::dist::PickFreeTcpPort();
  if (!port.ok()) return state.SkipWithError("no free port");
  const int64_t calls = 1 + static_cast<int64_t>(state.max_iterations);
  std::atomic<bool> peer_ok{true};
  std::vector<std::thread> peers;
  for (int r = 1; r < world; ++r) {
    peers.emplace_back([&, r] {
      auto g = CreateProcessGroup(BenchRendezvous(*port, r, world), BenchOptions());
      if (!g.ok()) {
        peer_ok = false;
        return;
      }
      torch::Tensor buf = torch::ones({numel});
      for (int64_t i = 0; i < calls && peer_ok; ++i) peer_ok = (*g)->AllReduceSum(buf).ok();
    });
  }
  auto g = CreateProcessGroup(BenchRendezvous(*port, 0, world), BenchOptions());
  bool ok = g.ok();
  torch::Tensor buf = torch::ones({numel});
  if (ok) ok = (*g)->AllReduceSum(buf).ok();  // warm-up
  for (auto _ : state) {
    if (!ok || !(ok = (*g)->AllReduceSum(buf).ok())) break;
  }
  for (auto& t : peers) t.join();
  if (!ok || !peer_ok) return state.SkipWithError("all-reduce failed");
  state.counters["MB"] = static_cast<double>(numel) * 4 / (1 << 20);
  state.SetBytesProcessed(state.iterations() * numel * 4);
}
BENCHMARK(BM_GradientAllReduce)
    ->ArgName("world")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(20)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

#if defined(DINO_WITH_CUDA)
// scripts/gpu-check: one rank over NCCL on cuda:0 training vit_small/16 (224 px, 2 local crops of
// 96 px, the paper's head with K 65536, bf16 autocast). step_ms is the wall time of Trainer::Step;
// nccl_allreduce_ms is one all-reduce of the student's whole gradient volume over the same NCCL
// group, timed to completion on the device (what a step would spend without overlap).
void BM_DinoStepCuda(benchmark::State& state) {
  if (!torch::cuda::is_available()) return state.SkipWithError("no CUDA device");
  auto port = dino::dist::PickFreeTcpPort();
  if (!port.ok()) return state.SkipWithError("no free port");
  DistOptions options = BenchOptions();
  options.device = torch::Device(torch::kCUDA, 0);
  auto group = CreateProcessGroup(BenchRendezvous(*port, 0, 1), options);
  if (!group.ok()) return state.SkipWithError(std::string(group.status().message()).c_str());
  C10dCollectives collectives(group->get());
  BucketedGradientSync sync(group->get());
  dino::TrainConfig config;  // vit_small, patch 16, 224 px, head 65536
  config.crops.n_local_crops = 2;
  config.optim.batch_size_per_rank = 32;
  config.device = "cuda:0";
  config.bf16 = true;
  auto trainer = dino::Trainer::Create(config, &collectives, &sync);
  if (!trainer.ok()) return state.SkipWithError(std::string(trainer.status().message()).c_str());
  auto crops = [&](int64_t step) {
    auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(step));
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < config.n_crops(); ++i) {
      const int64_t s = i < 2 ? config.crops.global_crop_size : config.crops.local_crop_size;
      out.push_back(
          at::randn({config.optim.batch_size_per_rank, 3, s, s}, gen, torch::TensorOptions()));
    }
    return out;
  };
  int64_t step = 0;
  for (; step < kWarmupSteps; ++step) {
    if (!(*trainer)->Step(crops(step)).ok()) return state.SkipWithError("warm-up step failed");
  }
  double step_ms = 0;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    if (!(*trainer)->Step(crops(step++)).ok()) return state.SkipWithError("step failed");
    step_ms += absl::ToDoubleMilliseconds(absl::Now() - start);
  }
  int64_t numel = 0;
  for (const auto& p : (*trainer)->StudentParameters()) numel += p.numel();
  torch::Tensor buf = torch::ones({numel}, torch::TensorOptions().device(options.device));
  constexpr int kCalls = 10;
  if (!(*group)->AllReduceSum(buf).ok()) return state.SkipWithError("all-reduce failed");
  torch::cuda::synchronize();
  const absl::Time start = absl::Now();
  for (int i = 0; i < kCalls; ++i) {
    if (!(*group)->AllReduceSum(buf).ok()) return state.SkipWithError("all-reduce failed");
  }
  torch::cuda::synchronize();
  const double iters = static_cast<double>(state.iterations());
  state.counters["step_ms"] = step_ms / iters;
  state.counters["nccl_allreduce_ms"] = absl::ToDoubleMilliseconds(absl::Now() - start) / kCalls;
  state.counters["grad_MB"] = static_cast<double>(numel) * 4 / (1 << 20);
  state.counters["images_per_s"] = benchmark::Counter(
      iters * static_cast<double>(config.optim.batch_size_per_rank), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DinoStepCuda)->Iterations(10)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif  // DINO_WITH_CUDA

}  // namespace

BENCHMARK_MAIN();
