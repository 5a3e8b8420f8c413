// ProcessGroupHandle: one rank's membership in a c10d process group built from the coordinator's
// rendezvous data (a plain struct: this layer knows nothing of gRPC).
//
// Rank 0 serves a c10d::TCPStore on `master_port`; every rank connects to it and wraps it in a
// c10d::PrefixStore named "<job_id>/<attempt>/", so a restarted attempt never reads stale keys.
// The backend is Gloo for CPU tensors and NCCL for CUDA tensors (NCCL only when built with
// DINO_WITH_CUDA). All timeouts come from DistOptions.
//
// Ownership: the caller owns the handle; C10dCollectives and BucketedGradientSync borrow it and
// must be destroyed first. Destroying the handle (or Shutdown()) releases the backend and then the
// store: no thread or listening port of the group outlives it, and the same process can then join
// a new group (the next attempt).
// Thread-safety: collectives may be issued from the training thread and from autograd threads
// (bucket launches); every rank must issue them in the same order. Shutdown() must not race with
// an issuing thread.
// Failure: a dead or hung peer makes the collective fail within the timeout with ABORTED; the
// handle then stays aborted, so later collectives fail at once with ABORTED instead of waiting
// again. Rendezvous problems are UNAVAILABLE (port taken, rank 0 unreachable within the timeout).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/dino/torch_compat.h"

namespace c10d {
class Store;
class Work;
}  // namespace c10d

namespace dino::dist {

// Where and as whom to join. Filled from the coordinator's Assignment.
struct Rendezvous {
  std::string job_id;
  int64_t attempt = 0;
  int rank = 0;
  int world_size = 1;
  std::string master_host = "127.0.0.1";
  int master_port = 29500;
};

struct DistOptions {
  // CPU selects Gloo; CUDA selects NCCL (needs a DINO_WITH_CUDA build).
  torch::Device device = torch::kCPU;
  // Bounds every collective (and Gloo's pairwise connect).
  absl::Duration timeout = absl::Seconds(60);
  // Bounds the rendezvous: reaching rank 0's store and all ranks joining. Ranks of one gang start
  // at different times, so this may need to be longer than a collective's bound. Zero: `timeout`.
  absl::Duration rendezvous_timeout = absl::ZeroDuration();
  // Address this rank's Gloo transport binds to. Empty: loopback when master_host is a loopback
  // name or address, otherwise the address this machine's hostname resolves to.
  std::string gloo_bind_host;
  // Gloo worker threads per process group.
  int gloo_threads = 2;
};

class ProcessGroupHandle {
 public:
  ~ProcessGroupHandle();
  ProcessGroupHandle(const ProcessGroupHandle&) = delete;
  ProcessGroupHandle& operator=(const ProcessGroupHandle&) = delete;

  int rank() const { return rendezvous_.rank; }
  int world_size() const { return rendezvous_.world_size; }
  const Rendezvous& rendezvous() const { return rendezvous_; }
  const DistOptions& options() const { return options_; }
  const torch::Device& device() const { return options_.device; }
  std::string backend_name() const;

  // Starts an in-place sum of `tensors[0]` (dense, contiguous, on device()) over all ranks.
  absl::StatusOr<c10::intrusive_ptr<c10d::Work>> AllReduceAsync(std::vector<at::Tensor>& tensors);
  absl::StatusOr<c10::intrusive_ptr<c10d::Work>> BroadcastAsync(std::vector<at::Tensor>& tensors,
                                                                int root);
  // Waits at most the configured timeout. Any failure aborts the handle.
  absl::Status Wait(const c10::intrusive_ptr<c10d::Work>& work, absl::string_view what);

  // Blocking conveniences over the above; `t` may be non-contiguous.
  absl::Status AllReduceSum(torch::Tensor& t);
  absl::Status Broadcast(torch::Tensor& t, int root);

  // Marks the group unusable (first error wins); later collectives return ABORTED at once.
  void Abort(const absl::Status& cause);
  // OK while usable, else the ABORTED status that broke it.
  absl::Status health() const;

  // Releases backend and store. Idempotent; the destructor calls it.
  void Shutdown();

 private:
  friend absl::StatusOr<std::unique_ptr<ProcessGroupHandle>> CreateProcessGroup(
      const Rendezvous& rendezvous, const DistOptions& options);
  ProcessGroupHandle(Rendezvous rendezvous, DistOptions options);

  const Rendezvous rendezvous_;
  const DistOptions options_;
  // Written only by CreateProcessGroup and Shutdown, which do not race with collectives.
  c10::intrusive_ptr<c10d::Store> tcp_store_;
  c10::intrusive_ptr<c10d::Store> prefix_store_;
  c10::intrusive_ptr<compat::C10dBackend> backend_;

  mutable absl::Mutex mu_;
  absl::Status abort_cause_ ABSL_GUARDED_BY(mu_);
};

// Joins the group described by `rendezvous`. Blocks until every rank has joined or the rendezvous
// timeout passes. Errors: INVALID_ARGUMENT (bad rank/world size/port, CUDA without NCCL support),
// UNAVAILABLE (port taken on rank 0, rank 0 unreachable, peers missing within the timeout).
absl::StatusOr<std::unique_ptr<ProcessGroupHandle>> CreateProcessGroup(const Rendezvous& rendezvous,
                                                                       const DistOptions& options);

#if defined(DINO_WITH_CUDA)
// OK when the NCCL that LibTorch loaded is the version of the <nccl.h> this build was compiled
// against; FAILED_PRECONDITION naming both otherwise. Needs no GPU. CreateProcessGroup checks it
// before every NCCL group.
absl::Status CheckNcclHeaders();
#endif

// The store prefix of an attempt: "<job_id>/<attempt>/".
std::string StorePrefix(const Rendezvous& rendezvous);

}  // namespace dino::dist
