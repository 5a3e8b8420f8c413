#include "worker/dist/process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#if defined(DINO_WITH_CUDA)
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "worker/dino/torch_status.h"

namespace dino::dist {
namespace {

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

absl::Duration RendezvousTimeout(const DistOptions& o) {
  return o.rendezvous_timeout > absl::ZeroDuration() ? o.rendezvous_timeout : o.timeout;
}

bool IsLoopback(absl::string_view host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::Status ValidateRendezvous(const Rendezvous& r, const DistOptions& o) {
  if (r.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world_size must be >= 1, got ", r.world_size));
  }
  if (r.rank < 0 || r.rank >= r.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", r.rank, " is outside [0, ", r.world_size, ")"));
  }
  if (r.master_port <= 0 || r.master_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad rendezvous port ", r.master_port));
  }
  if (r.job_id.empty()) return absl::InvalidArgumentError("rendezvous needs a job_id");
  if (o.timeout <= absl::ZeroDuration() || o.rendezvous_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the process group timeouts must be positive");
  }
  if (o.device.is_cuda()) {
#if !defined(DINO_WITH_CUDA)
    return absl::InvalidArgumentError("CUDA process groups need a DINO_WITH_CUDA build (NCCL)");
#endif
  } else if (!o.device.is_cpu()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no process group backend for device ", o.device.str()));
  }
  return absl::OkStatus();
}

// Rendezvous failures are retryable by the coordinator: UNAVAILABLE with what went wrong.
absl::Status StoreError(const Rendezvous& r, const DistOptions& o, const absl::Status& raw) {
  const absl::string_view msg = raw.message();
  // LibTorch 1.13 says "Address already in use"; 2.4+'s libuv TCPStore says it in lower case.
  const std::string lower = absl::AsciiStrToLower(msg);
  if (absl::StrContains(lower, "address already in use") || absl::StrContains(msg, "errno: 98")) {
    return absl::UnavailableError(absl::StrCat("rendezvous port ", r.master_port,
                                               " on rank 0 is already in use (", msg, ")"));
  }
  if (r.rank == 0) {
    return absl::UnavailableError(absl::StrCat(
        "rank 0 serving the rendezvous store on port ", r.master_port, ": not all ", r.world_size,
        " ranks joined within ", absl::FormatDuration(RendezvousTimeout(o)), " (", msg, ")"));
  }
  return absl::UnavailableError(absl::StrCat(
      "rank ", r.rank, " could not reach the rendezvous at ", r.master_host, ":", r.master_port,
      " within ", absl::FormatDuration(RendezvousTimeout(o)), " (", msg, ")"));
}

#if defined(DINO_WITH_CUDA)
// c10d reads its NCCL error handling from the environment when a ProcessGroupNCCL is built. Its
// default (2.x: tear the process down on a failed or timed-out collective) would kill the worker
// before it can report the failure, so unless the operator chose otherwise: clean up the
// communicators and keep the process (CleanUpOnly); make Work::wait block and throw on its
// timeout, which Wait() turns into ABORTED like a Gloo failure; and create communicators in
// NCCL's non-blocking mode, so that one whose peer never comes can be aborted at the timeout
// instead of blocking its creator inside ncclCommInitRank.
void DefaultNcclErrorHandling() {
  static std::once_flag once;
  std::call_once(once, [] {
    setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2", /*overwrite=*/0);
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
    setenv("TORCH_NCCL_USE_COMM_NONBLOCKING", "1", /*overwrite=*/0);
  });
}

// The NCCL LibTorch loaded against the <nccl.h> this file was compiled with: the process group's
// options embed NCCL structs, so a different version would corrupt memory rather than fail.
absl::Status CheckNcclVersion() {
  const std::string compiled = absl::StrCat(NCCL_MAJOR, ".", NCCL_MINOR, ".", NCCL_PATCH);
  DINO_ASSIGN_OR_RETURN(std::string loaded,
                        TorchCallOr("NCCL version", [] { return c10d::getNcclVersion(); }));
  if (loaded != compiled) {
    return absl::FailedPreconditionError(
        absl::StrCat("LibTorch uses NCCL ", loaded, " but dinotrain was compiled against nccl.h ",
                     compiled, ": rebuild with the nvidia-nccl headers of this LibTorch"));
  }
  return absl::OkStatus();
}
#endif

}  // namespace

#if defined(DINO_WITH_CUDA)
absl::Status CheckNcclHeaders() { return CheckNcclVersion(); }
#endif

std::string StorePrefix(const Rendezvous& rendezvous) {
  return absl::StrCat(rendezvous.job_id, "/", rendezvous.attempt, "/");
}

ProcessGroupHandle::ProcessGroupHandle(Rendezvous rendezvous, DistOptions options)
    : rendezvous_(std::move(rendezvous)), options_(std::move(options)) {}

ProcessGroupHandle::~ProcessGroupHandle() { Shutdown(); }

std::string ProcessGroupHandle::backend_name() const {
  return options_.device.is_cuda() ? "nccl" : "gloo";
}

absl::StatusOr<std::unique_ptr<ProcessGroupHandle>> CreateProcessGroup(const Rendezvous& rendezvous,
                                                                       const DistOptions& options) {
  DINO_RETURN_IF_ERROR(ValidateRendezvous(rendezvous, options));
  std::unique_ptr<ProcessGroupHandle> handle(new ProcessGroupHandle(rendezvous, options));
  const auto timeout = ToChrono(options.timeout);

  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(rendezvous.master_port);
  store_options.isServer = rendezvous.rank == 0;
  store_options.numWorkers = rendezvous.world_size;
  store_options.waitWorkers = true;
  store_options.timeout = ToChrono(RendezvousTimeout(options));
  absl::Status s = TorchCall("rendezvous store", [&] {
    handle->tcp_store_ = c10::make_intrusive<c10d::TCPStore>(rendezvous.master_host, store_options);
  });
  if (!s.ok()) return StoreError(rendezvous, options, s);
  handle->prefix_store_ =
      c10::make_intrusive<c10d::PrefixStore>(StorePrefix(rendezvous), handle->tcp_store_);

  const std::string context =
      absl::StrCat("rank ", rendezvous.rank, " of ", rendezvous.world_size, " joining ",
                   handle->backend_name(), " group ", StorePrefix(rendezvous));
  if (options.device.is_cuda()) {
#if defined(DINO_WITH_CUDA)
    if (absl::Status version = CheckNcclVersion(); !version.ok()) {
      handle->Shutdown();
      return version;
    }
    DefaultNcclErrorHandling();
    s = TorchCall(context, [&] {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      handle->backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          handle->prefix_store_, rendezvous.rank, rendezvous.world_size, nccl_options);
    });
#endif
  } else {
    s = TorchCall(context, [&] {
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
      std::string bind_host = options.gloo_bind_host;
      if (bind_host.empty() && IsLoopback(rendezvous.master_host)) bind_host = "127.0.0.1";
      gloo_options->devices.push_back(
          bind_host.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                            : c10d::ProcessGroupGloo::createDeviceForHostname(bind_host));
      gloo_options->threads = options.gloo_threads;
      handle->backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(
          handle->prefix_store_, rendezvous.rank, rendezvous.world_size, gloo_options);
    });
  }
  if (!s.ok()) {
    handle->Shutdown();
    return absl::UnavailableError(s.message());
  }
  DINO_LOG(INFO) << "rank " << rendezvous.rank << "/" << rendezvous.world_size << " joined "
                 << handle->backend_name() << " group " << StorePrefix(rendezvous) << " at "
                 << rendezvous.master_host << ":" << rendezvous.master_port;
  return handle;
}

void ProcessGroupHandle::Abort(const absl::Status& cause) {
  absl::MutexLock lock(&mu_);
  if (!abort_cause_.ok()) return;
  abort_cause_ = absl::Status(absl::StatusCode::kAborted, cause.message());
  DINO_LOG(WARNING) << "rank " << rendezvous_.rank << " aborting group " << StorePrefix(rendezvous_)
                    << ": " << cause.message();
}

absl::Status ProcessGroupHandle::health() const {
  absl::MutexLock lock(&mu_);
  return abort_cause_;
}

absl::StatusOr<c10::intrusive_ptr<c10d::Work>> ProcessGroupHandle::AllReduceAsync(
    std::vector<at::Tensor>& tensors) {
  DINO_RETURN_IF_ERROR(health());
  if (!backend_) return absl::FailedPreconditionError("process group is shut down");
  auto work = TorchCallOr("all-reduce", [&] { return backend_->allreduce(tensors); });
  if (!work.ok()) Abort(work.status());
  return work;
}

absl::StatusOr<c10::intrusive_ptr<c10d::Work>> ProcessGroupHandle::BroadcastAsync(
    std::vector<at::Tensor>& tensors, int root) {
  DINO_RETURN_IF_ERROR(health());
  if (!backend_) return absl::FailedPreconditionError("process group is shut down");
  if (root < 0 || root >= world_size()) {
    return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " out of range"));
  }
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  auto work = TorchCallOr("broadcast", [&] { return backend_->broadcast(tensors, opts); });
  if (!work.ok()) Abort(work.status());
  return work;
}

absl::Status ProcessGroupHandle::Wait(const c10::intrusive_ptr<c10d::Work>& work,
                                      absl::string_view what) {
  const std::string context =
      absl::StrCat("rank ", rank(), " ", what, " in group ", StorePrefix(rendezvous_));
  absl::Status s = TorchCall(context, [&] { work->wait(ToChrono(options_.timeout)); });
  if (s.ok()) return s;
  // Any collective failure leaves the ranks out of step: the group cannot be used again.
  Abort(s);
  return health();
}

absl::Status ProcessGroupHandle::AllReduceSum(torch::Tensor& t) {
  std::vector<at::Tensor> tensors{t.is_contiguous() ? t : t.contiguous()};
  DINO_ASSIGN_OR_RETURN(auto work, AllReduceAsync(tensors));
  DINO_RETURN_IF_ERROR(Wait(work, "all-reduce"));
  if (!tensors[0].is_same(t)) t.copy_(tensors[0]);
  return absl::OkStatus();
}

absl::Status ProcessGroupHandle::Broadcast(torch::Tensor& t, int root) {
  std::vector<at::Tensor> tensors{t.is_contiguous() ? t : t.contiguous()};
  DINO_ASSIGN_OR_RETURN(auto work, BroadcastAsync(tensors, root));
  DINO_RETURN_IF_ERROR(Wait(work, "broadcast"));
  if (!tensors[0].is_same(t)) t.copy_(tensors[0]);
  return absl::OkStatus();
}

void ProcessGroupHandle::Shutdown() {
  // The backend's destructor joins its worker threads and closes the Gloo pairs; the store's
  // closes the rendezvous sockets (and on rank 0 the listening port). A 2.x backend is told first:
  // ProcessGroupNCCL expects shutdown() (normal exit) or abort() (after a failure, so that no
  // communicator waits on a peer that is gone) before it is destroyed.
  const bool aborted = !health().ok();
  absl::Status s = TorchCall("process group shutdown", [&] {
#if DINO_C10D_BACKEND_SHUTDOWN
    if (backend_) {
      if (aborted) {
        backend_->abort();
      } else {
        backend_->shutdown();
      }
    }
#else
    (void)aborted;
#endif
    backend_.reset();
    prefix_store_.reset();
    tcp_store_.reset();
  });
  if (!s.ok()) {
    DINO_LOG(WARNING) << s.message();
  }
}

}  // namespace dino::dist
