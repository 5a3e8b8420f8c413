#include "worker/dist/bucketed_gradient_sync.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/dino/torch_status.h"

namespace dino::dist {

BucketedGradientSync::BucketedGradientSync(ProcessGroupHandle* group, GradientSyncOptions options,
                                           Clock* clock)
    : group_(group), options_(options), clock_(clock) {}

BucketedGradientSync::~BucketedGradientSync() {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < hook_ids_.size(); ++i) {
    absl::Status s =
        TorchCall("removing gradient hook", [&] { params_[i].remove_hook(hook_ids_[i]); });
    (void)s;  // A parameter whose hook cannot be removed is being destroyed anyway.
  }
}

absl::Status BucketedGradientSync::Attach(const std::vector<torch::Tensor>& params) {
  absl::MutexLock lock(&mu_);
  if (!params_.empty()) return absl::FailedPreconditionError("gradient sync is already attached");
  if (options_.bucket_cap_bytes <= 0) {
    return absl::InvalidArgumentError("bucket_cap_bytes must be positive");
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    if (!p.defined() || !p.requires_grad() || !p.is_leaf() ||
        !torch::isFloatingType(p.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", i, " is not a floating-point leaf that requires grad"));
    }
    if (p.device().type() != group_->device().type()) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", i, " is on ", p.device().str(),
                                                     ", the group on ", group_->device().str()));
    }
  }
  params_ = params;
  std::vector<int> reverse(params.size());
  for (size_t i = 0; i < params.size(); ++i) reverse[i] = static_cast<int>(params.size() - 1 - i);
  DINO_RETURN_IF_ERROR(LayOutBuckets(reverse));
  DINO_RETURN_IF_ERROR(TorchCall("installing gradient hooks", [&] {
    for (size_t i = 0; i < params_.size(); ++i) {
      const int index = static_cast<int>(i);
      hook_ids_.push_back(params_[i].register_hook(
          [this, index](const torch::Tensor& grad) { OnGrad(index, grad); }));
    }
  }));
  expected_.assign(params.size(), true);
  all_expected_ = true;
  produced_.assign(params.size(), false);
  had_grad_at_launch_.assign(params.size(), false);
  late_.assign(params.size(), torch::Tensor());
  return absl::OkStatus();
}

absl::Status BucketedGradientSync::LayOutBuckets(const std::vector<int>& order) {
  buckets_.clear();
  slots_.assign(params_.size(), Slot{});
  int64_t bucket_bytes = 0;
  for (const int i : order) {
    const auto& p = params_[i];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool start_new =
        buckets_.empty() || bucket_bytes + bytes > options_.bucket_cap_bytes ||
        params_[buckets_.back().params.front()].scalar_type() != p.scalar_type() ||
        params_[buckets_.back().params.front()].device() != p.device();
    if (start_new) {
      buckets_.emplace_back();
      bucket_bytes = 0;
    }
    Bucket& b = buckets_.back();
    slots_[i] = Slot{static_cast<int>(buckets_.size()) - 1, b.grad_numel, p.numel(),
                     static_cast<int>(b.params.size())};
    b.params.push_back(i);
    b.grad_numel += p.numel();
    bucket_bytes += bytes;
  }
  return TorchCall("allocating gradient buckets", [&] {
    for (auto& b : buckets_) {
      const auto& first = params_[b.params.front()];
      b.flat = torch::zeros({b.grad_numel + 2 * static_cast<int64_t>(b.params.size())},
                            first.options().requires_grad(false));
    }
  });
}

absl::Status BucketedGradientSync::RebuildInArrivalOrder() {
  rebuilt_ = true;
  const int64_t n = static_cast<int64_t>(params_.size());
  std::vector<int64_t> order;
  order.reserve(n);
  std::vector<bool> placed(n, false);
  for (const int p : arrival_order_) {
    if (!placed[p]) order.push_back(p);
    placed[p] = true;
  }
  for (int64_t p = n - 1; p >= 0; --p) {
    if (!placed[p]) order.push_back(p);
  }
  arrival_order_.clear();
  DINO_ASSIGN_OR_RETURN(torch::Tensor agreed, TorchCallOr("bucket order", [&] {
                          return torch::tensor(order, torch::kLong).to(group_->device());
                        }));
  DINO_RETURN_IF_ERROR(group_->Broadcast(agreed, 0));
  std::vector<int> rank0_order(n);
  DINO_RETURN_IF_ERROR(TorchCall("bucket order", [&] {
    auto cpu = agreed.cpu();
    auto acc = cpu.accessor<int64_t, 1>();
    std::vector<bool> seen(n, false);
    for (int64_t j = 0; j < n; ++j) {
      TORCH_CHECK(acc[j] >= 0 && acc[j] < n && !seen[acc[j]], "rank 0 sent a bad bucket order");
      seen[acc[j]] = true;
      rank0_order[j] = static_cast<int>(acc[j]);
    }
  }));
  return LayOutBuckets(rank0_order);
}

std::vector<std::vector<int>> BucketedGradientSync::bucket_layout() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::vector<int>> out;
  for (const auto& b : buckets_) out.push_back(b.params);
  return out;
}

StepTrace BucketedGradientSync::last_trace() const {
  absl::MutexLock lock(&mu_);
  return trace_;
}

void BucketedGradientSync::BeginStep() {
  absl::MutexLock lock(&mu_);
  armed_ = true;
  next_launch_ = 0;
  std::fill(produced_.begin(), produced_.end(), false);
  std::fill(had_grad_at_launch_.begin(), had_grad_at_launch_.end(), false);
  std::fill(late_.begin(), late_.end(), torch::Tensor());
  hook_error_ = absl::OkStatus();
  trace_ = StepTrace{};
  trace_.begin_step = clock_->Now();
  for (auto& b : buckets_) {
    b.launched = false;
    b.work.reset();
    b.expected_pending = static_cast<int>(
        std::count_if(b.params.begin(), b.params.end(), [&](int p) { return expected_[p]; }));
  }
}

torch::Tensor BucketedGradientSync::GradView(int param) const {
  const Slot& s = slots_[param];
  return buckets_[s.bucket].flat.narrow(0, s.offset, s.numel).view(params_[param].sizes());
}

void BucketedGradientSync::OnGrad(int param, const torch::Tensor& grad) {
  absl::MutexLock lock(&mu_);
  if (!armed_ || !hook_error_.ok()) return;
  Bucket& b = buckets_[slots_[param].bucket];
  absl::Status s = TorchCall("gradient hook", [&] {
    torch::NoGradGuard no_grad;
    if (b.launched) {
      // Missed its bucket: kept for the late-gradient all-reduce in FinishStep.
      if (late_[param].defined()) {
        late_[param].add_(grad);
      } else {
        late_[param] = grad.detach().to(torch::kFloat32).contiguous().clone();
      }
      produced_[param] = true;
      return;
    }
    // The slot holds what .grad will hold after accumulation, so undrained grads are included.
    auto view = GradView(param);
    const auto& old = params_[param].grad();
    if (produced_[param] || !old.defined()) {
      if (produced_[param]) {
        view.add_(grad);
      } else {
        view.copy_(grad);
      }
    } else {
      torch::add_out(view, old, grad);
    }
    if (!produced_[param]) {
      produced_[param] = true;
      if (expected_[param]) --b.expected_pending;
      if (!rebuilt_) arrival_order_.push_back(param);
    }
    LaunchReadyLocked();
  });
  if (!s.ok()) hook_error_ = s;
}

void BucketedGradientSync::LaunchReadyLocked() {
  while (next_launch_ < static_cast<int>(buckets_.size()) &&
         buckets_[next_launch_].expected_pending == 0) {
    LaunchLocked(next_launch_++, /*during_backward=*/true);
  }
}

void BucketedGradientSync::LaunchLocked(int bucket, bool during_backward) {
  Bucket& b = buckets_[bucket];
  b.launched = true;
  const int64_t k = static_cast<int64_t>(b.params.size());
  std::vector<float> flags(2 * k, 0.0f);
  for (int64_t j = 0; j < k; ++j) {
    const int p = b.params[j];
    if (!produced_[p]) {
      const auto& old = params_[p].grad();
      if (old.defined()) {
        GradView(p).copy_(old);
      } else {
        GradView(p).zero_();
      }
      had_grad_at_launch_[p] = old.defined();
    } else {
      had_grad_at_launch_[p] = true;
    }
    flags[j] = had_grad_at_launch_[p] ? 1.0f : 0.0f;
    flags[k + j] = produced_[p] ? 1.0f : 0.0f;
  }
  b.flat.narrow(0, b.grad_numel, 2 * k).copy_(torch::tensor(flags));
  std::vector<at::Tensor> tensors{b.flat};
  auto work = group_->AllReduceAsync(tensors);
  trace_.launches.push_back(StepTrace::Launch{bucket, clock_->Now(), during_backward});
  if (!work.ok()) {
    if (hook_error_.ok()) hook_error_ = work.status();
    return;
  }
  b.work = *std::move(work);
}

absl::Status BucketedGradientSync::FinishStep() {
  absl::MutexLock lock(&mu_);
  trace_.finish_step_called = clock_->Now();
  armed_ = false;
  DINO_RETURN_IF_ERROR(TorchCall("launching remaining gradient buckets", [&] {
    torch::NoGradGuard no_grad;
    while (next_launch_ < static_cast<int>(buckets_.size())) {
      LaunchLocked(next_launch_++, /*during_backward=*/false);
    }
  }));
  for (size_t i = 0; i < buckets_.size(); ++i) {
    if (!buckets_[i].work) continue;
    DINO_RETURN_IF_ERROR(group_->Wait(buckets_[i].work, absl::StrCat("gradient bucket ", i)));
    buckets_[i].work.reset();
  }
  if (!hook_error_.ok()) {
    group_->Abort(hook_error_);
    return group_->health();
  }
  if (!all_expected_) DINO_RETURN_IF_ERROR(ReduceLateGradients());
  DINO_RETURN_IF_ERROR(WriteBack());
  trace_.reduced = clock_->Now();
  if (options_.rebuild_after_first_step && !rebuilt_) {
    DINO_RETURN_IF_ERROR(RebuildInArrivalOrder());
  }
  return absl::OkStatus();
}

absl::Status BucketedGradientSync::ReduceLateGradients() {
  const auto device = group_->device();
  const int64_t n = static_cast<int64_t>(params_.size());
  DINO_ASSIGN_OR_RETURN(torch::Tensor late_flags, TorchCallOr("late gradient flags", [&] {
                          std::vector<float> f(n, 0.0f);
                          for (int64_t i = 0; i < n; ++i) f[i] = late_[i].defined() ? 1.0f : 0.0f;
                          return torch::tensor(f).to(device);
                        }));
  DINO_RETURN_IF_ERROR(group_->AllReduceSum(late_flags));
  std::vector<int> late_params;
  DINO_RETURN_IF_ERROR(TorchCall("late gradient flags", [&] {
    auto cpu = late_flags.cpu();
    auto acc = cpu.accessor<float, 1>();
    for (int64_t i = 0; i < n; ++i) {
      if (acc[i] > 0.0f) late_params.push_back(static_cast<int>(i));
    }
  }));
  if (late_params.empty()) return absl::OkStatus();
  trace_.late_gradient_pass = true;
  // [late grads (zeros where this rank has none) | has_grad increments | produced increments]
  torch::Tensor packed;
  DINO_RETURN_IF_ERROR(TorchCall("packing late gradients", [&] {
    std::vector<torch::Tensor> parts;
    const int64_t m = static_cast<int64_t>(late_params.size());
    std::vector<float> flags(2 * m, 0.0f);
    for (int64_t j = 0; j < m; ++j) {
      const int p = late_params[j];
      if (late_[p].defined()) {
        parts.push_back(late_[p].reshape(-1));
        flags[j] = had_grad_at_launch_[p] ? 0.0f : 1.0f;
        flags[m + j] = 1.0f;
      } else {
        parts.push_back(torch::zeros({params_[p].numel()},
                                     torch::TensorOptions().dtype(torch::kFloat32).device(device)));
      }
    }
    parts.push_back(torch::tensor(flags).to(device));
    packed = torch::cat(parts);
  }));
  DINO_RETURN_IF_ERROR(group_->AllReduceSum(packed));
  return TorchCall("unpacking late gradients", [&] {
    torch::NoGradGuard no_grad;
    const int64_t m = static_cast<int64_t>(late_params.size());
    int64_t offset = 0;
    for (int64_t j = 0; j < m; ++j) {
      const int p = late_params[j];
      const Slot& s = slots_[p];
      Bucket& b = buckets_[s.bucket];
      GradView(p).add_(packed.narrow(0, offset, s.numel).view(params_[p].sizes()));
      offset += s.numel;
      const int64_t k = static_cast<int64_t>(b.params.size());
      b.flat.narrow(0, b.grad_numel + s.index_in_bucket, 1).add_(packed.narrow(0, offset + j, 1));
      b.flat.narrow(0, b.grad_numel + k + s.index_in_bucket, 1)
          .add_(packed.narrow(0, offset + m + j, 1));
    }
  });
}

absl::Status BucketedGradientSync::WriteBack() {
  const double world = static_cast<double>(group_->world_size());
  return TorchCall("writing reduced gradients", [&] {
    torch::NoGradGuard no_grad;
    for (auto& b : buckets_) {
      const int64_t k = static_cast<int64_t>(b.params.size());
      auto flags = b.flat.narrow(0, b.grad_numel, 2 * k).to(torch::kCPU, torch::kFloat32);
      auto acc = flags.accessor<float, 1>();
      b.flat.narrow(0, 0, b.grad_numel).div_(world);
      for (int64_t j = 0; j < k; ++j) {
        const int p = b.params[j];
        auto& param = params_[p];
        if (acc[j] > 0.0f) {
          if (param.grad().defined()) {
            param.mutable_grad().copy_(GradView(p));
          } else {
            param.mutable_grad() = GradView(p).clone();
          }
        } else {
          param.mutable_grad() = torch::Tensor();
        }
        expected_[p] = acc[k + j] > 0.0f;
      }
    }
    all_expected_ = std::all_of(expected_.begin(), expected_.end(), [](bool e) { return e; });
  });
}

}  // namespace dino::dist
