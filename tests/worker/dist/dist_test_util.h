// Helpers for the worker/dist tests: ranks as threads over Gloo on loopback, a small model, and
// process-level probes (threads, listening sockets) for the tear-down checks.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/dist/process_group.h"

namespace dino::dist::testing {

// Rendezvous for `rank` of `world` on loopback at `port`.
Rendezvous LoopbackRendezvous(const std::string& job, int64_t attempt, int rank, int world,
                              int port);
// Collectives bounded by `timeout`; the rendezvous gets longer by default, because a loaded test
// machine may start rank 0's store late.
DistOptions TestOptions(absl::Duration timeout = absl::Seconds(10),
                        absl::Duration rendezvous_timeout = absl::Seconds(30));

// Runs `body(rank, group)` on `world` threads, each joining the same new group (fresh port, job
// `job`). Returns the first non-OK status of a rank (group creation or body).
absl::Status RunRanks(int world, const std::string& job,
                      const std::function<absl::Status(int rank, ProcessGroupHandle* group)>& body,
                      absl::Duration timeout = absl::Seconds(10));

// A deterministic MLP, deep enough for backward to span several buckets.
struct MlpImpl : torch::nn::Module {
  MlpImpl(int in, int hidden, int out, int depth);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList layers;
};
TORCH_MODULE(Mlp);

// Parameters of `m` with the same values on every call with the same seed, even when ranks
// (threads) call it concurrently: LibTorch's default generator is process-wide, so seeding and
// drawing happen under DefaultGeneratorMutex().
Mlp MakeMlp(uint64_t seed, int in = 16, int hidden = 32, int out = 8, int depth = 4);

// Held while a test seeds and draws from LibTorch's default CPU generator on a rank thread.
absl::Mutex& DefaultGeneratorMutex();

int CountThreads();           // entries of /proc/self/task
int CountListeningSockets();  // TCP sockets of this process in LISTEN state
bool PortIsListening(int port);

}  // namespace dino::dist::testing
