#include "worker/dino/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/dino/cpu_allocator.h"
#include "worker/dino/failure_kind.h"
#include "worker/dino/micro_batch.h"
#include "worker/dino/schedules.h"
#include "worker/dino/torch_compat.h"
#include "worker/dino/torch_status.h"

namespace dino {

ScheduleValues SchedulesAt(const TrainConfig& c, int64_t step) {
  const int64_t total = c.total_steps();
  const int64_t epoch = step / c.steps_per_epoch;
  ScheduleValues v;
  v.lr = CosineSchedule(c.scaled_lr(), c.optim.min_lr, step, total,
                        c.optim.warmup_epochs * c.steps_per_epoch);
  v.weight_decay = CosineSchedule(c.optim.weight_decay, c.optim.weight_decay_end, step, total);
  v.teacher_momentum = TeacherMomentum(c.dino.momentum_teacher, step, total);
  v.teacher_temp = TeacherTemperature(epoch, c.dino.warmup_teacher_temp, c.dino.teacher_temp,
                                      c.dino.warmup_teacher_temp_epochs);
  return v;
}

Trainer::Trainer(const TrainConfig& config, Collectives* collectives, GradientSync* sync)
    : config_(config),
      collectives_(collectives),
      sync_(sync),
      device_(torch::kCPU),
      drop_path_generator_(at::detail::createCPUGenerator(config.seed)) {}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainConfig& config,
                                                         Collectives* collectives,
                                                         GradientSync* sync) {
  if (collectives == nullptr || sync == nullptr) {
    return absl::InvalidArgumentError("Trainer::Create: collectives and sync must not be null");
  }
  TrainConfig resolved = config;
  DINO_RETURN_IF_ERROR(resolved.ApplyPreset());
  DINO_RETURN_IF_ERROR(resolved.Validate());
  if (collectives->world_size() != resolved.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("world_size (", resolved.world_size,
                                                   ") differs from the collectives' (",
                                                   collectives->world_size(), ")"));
  }
  std::unique_ptr<Trainer> trainer(new Trainer(resolved, collectives, sync));
  DINO_RETURN_IF_ERROR(trainer->Init());
  return trainer;
}

absl::Status Trainer::Init() {
  DINO_RETURN_IF_ERROR(TorchCall("trainer: device " + config_.device, [&] {
    device_ = torch::Device(config_.device);
    if (device_.is_cuda()) TORCH_CHECK(torch::cuda::is_available(), "CUDA is not available");
  }));
  const int64_t threads = config_.threads > 0
                              ? config_.threads
                              : static_cast<int64_t>(std::thread::hardware_concurrency());
  DINO_RETURN_IF_ERROR(TorchCall("trainer: building the model", [&] {
    // Denormals flushed to zero on the CPU: a sharpened teacher softmax (T = 0.04) puts most of
    // its K probabilities below 1e-38, and x86 computes on denormal floats many times slower.
    // The flag is per thread: set here for the training thread (and the threads it starts).
    if (!device_.is_cuda()) {
      at::globalContext().setFlushDenormal(true);
      // Large CPU tensors are reused step to step instead of page-faulted in every step.
      InstallCachingCpuAllocator();
    }
    torch::set_num_threads(static_cast<int>(std::max<int64_t>(threads, 1)));
    torch::manual_seed(config_.seed);
    // Each rank draws its own drop-path masks, as independent DDP replicas do.
    drop_path_generator_.set_current_seed(
        config_.seed + 1000003ULL * static_cast<uint64_t>(collectives_->rank() + 1));
    student_ = MultiCropWrapper(config_, config_.model.drop_path_rate);
    teacher_ = MultiCropWrapper(config_, 0.0);
    student_->to(device_);
    teacher_->to(device_);
    student_->backbone->set_drop_path_generator(drop_path_generator_);
    for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
  }));
  for (auto& p : student_->parameters()) {
    torch::NoGradGuard no_grad;
    torch::Tensor alias = p.detach();
    DINO_RETURN_IF_ERROR(Annotate(collectives_->Broadcast(alias, 0), "broadcasting the student"));
  }
  for (auto& b : student_->buffers()) {
    torch::Tensor alias = b.detach();
    DINO_RETURN_IF_ERROR(Annotate(collectives_->Broadcast(alias, 0), "broadcasting the student"));
  }
  DINO_ASSIGN_OR_RETURN(TeacherEma ema, TeacherEma::Create(*teacher_, *student_));
  ema_.emplace(std::move(ema));
  DINO_RETURN_IF_ERROR(TorchCall("trainer: teacher init", [&] { ema_->CopyFromStudent(); }));
  DINO_RETURN_IF_ERROR(TorchCall("trainer: optimizer", [&] {
    loss_ = std::make_unique<DINOLoss>(config_.head.out_dim, config_.n_crops(),
                                       config_.dino.student_temp, config_.dino.center_momentum,
                                       device_);
    optimizer_ = std::make_unique<DinoOptimizer>(*student_);
  }));
  DINO_RETURN_IF_ERROR(Annotate(sync_->Attach(optimizer_->trainable()), "attaching gradient sync"));
  return InitMicroBatches(threads);
}

absl::Status Trainer::InitMicroBatches(int64_t threads) {
  const bool splittable = !device_.is_cuda() && config_.world_size == 1 && !config_.head.use_bn;
  int64_t parts = config_.micro_batches;
  if (parts == 0) {
    parts =
        splittable ? std::clamp<int64_t>(config_.optim.batch_size_per_rank / 16, 1, threads) : 1;
  }
  if (parts > 1 && !splittable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "micro_batches = ", parts, " needs a CPU run on one rank without head BatchNorm (device ",
        config_.device, ", world_size ", config_.world_size, ", head.use_bn ",
        config_.head.use_bn ? "true" : "false", ")"));
  }
  if (parts > config_.optim.batch_size_per_rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "micro_batches = ", parts, " exceeds the batch (", config_.optim.batch_size_per_rank, ")"));
  }
  micro_batches_ = parts;
  if (parts > 1) {
    return TorchCall("trainer: micro-batch threads", [&] {
      micro_runner_ = std::make_unique<MicroBatchRunner>(
          static_cast<int>(parts), static_cast<int>(std::max<int64_t>(1, threads / parts)),
          static_cast<int>(threads), /*flush_denormal=*/true);
    });
  }
  return absl::OkStatus();
}

absl::Status Trainer::SplitForwardBackward(const std::vector<torch::Tensor>& crops,
                                           double teacher_temp, LossOutput* combined,
                                           torch::Tensor* teacher_out) {
  const int64_t batch = crops[0].size(0);
  const int parts = static_cast<int>(micro_batches_);
  std::vector<at::Generator> generators;
  if (config_.model.drop_path_rate > 0) {
    // Each part draws its masks from its own generator, seeded from the checkpointed one.
    std::lock_guard<std::mutex> lock(drop_path_generator_.mutex());
    auto* source = drop_path_generator_.get<at::CPUGeneratorImpl>();
    for (int i = 0; i < parts; ++i) {
      generators.push_back(at::detail::createCPUGenerator(source->random64()));
    }
  }
  const std::vector<torch::Tensor> params = optimizer_->trainable();
  std::vector<std::vector<torch::Tensor>> grads(parts);
  std::vector<LossOutput> losses(parts);
  std::vector<torch::Tensor> teachers(parts);
  std::vector<absl::Status> status(parts);
  const auto begin = [&](int i) { return batch * i / parts; };
  micro_runner_->Run([&](int i) {
    status[i] = TorchCall(absl::StrCat("step ", step_, ": micro-batch ", i), [&] {
      std::optional<ScopedDropPathGenerator> scoped;
      if (!generators.empty()) scoped.emplace(generators[i]);
      const int64_t start = begin(i), rows = begin(i + 1) - start;
      std::vector<torch::Tensor> part;
      part.reserve(crops.size());
      for (const auto& c : crops)
        part.push_back(c.narrow(0, start, rows).to(torch::kFloat).contiguous());
      {
        torch::NoGradGuard no_grad;
        teachers[i] = teacher_->forward({part[0], part[1]}).to(torch::kFloat);
      }
      losses[i] = loss_->Compute(student_->forward(part), teachers[i], teacher_temp);
      const auto scaled = losses[i].loss * (static_cast<double>(rows) / static_cast<double>(batch));
      grads[i] = torch::autograd::grad({scaled}, params, /*grad_outputs=*/{},
                                       /*retain_graph=*/false, /*create_graph=*/false,
                                       /*allow_unused=*/true);
      losses[i].loss = losses[i].loss.detach();
    });
  });
  for (const auto& st : status) DINO_RETURN_IF_ERROR(st);
  return TorchCall(absl::StrCat("step ", step_, ": combining micro-batches"), [&] {
    torch::NoGradGuard no_grad;
    torch::Tensor loss, mean_probs;
    double entropy = 0;
    for (int i = 0; i < parts; ++i) {
      const double w = static_cast<double>(begin(i + 1) - begin(i)) / static_cast<double>(batch);
      loss = i == 0 ? losses[i].loss * w : loss + losses[i].loss * w;
      mean_probs =
          i == 0 ? losses[i].teacher_mean_probs * w : mean_probs + losses[i].teacher_mean_probs * w;
      entropy += w * losses[i].teacher_entropy;
    }
    combined->loss = loss;
    combined->teacher_entropy = entropy;
    combined->teacher_mean_probs = mean_probs;
    combined->batch_mean_entropy = DINOLoss::Entropy(mean_probs);
    combined->kl_teacher_student = loss.item<double>() - entropy;
    // Summed in part order, whichever thread finished first: the step stays deterministic.
    for (size_t j = 0; j < params.size(); ++j) {
      torch::Tensor g;
      for (int i = 0; i < parts; ++i) {
        const torch::Tensor& gi = grads[i][j];
        if (!gi.defined()) continue;
        g = g.defined() ? g.add_(gi) : gi;
      }
      if (g.defined()) params[j].mutable_grad() = g;
    }
    *teacher_out = torch::cat(teachers, 0);
  });
}

absl::Status Trainer::CheckCrops(const std::vector<torch::Tensor>& crops) const {
  const int64_t expected = config_.n_crops();
  if (static_cast<int64_t>(crops.size()) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("Step: expected ", expected, " crops (2 global + ",
                     config_.crops.n_local_crops, " local), got ", crops.size()));
  }
  const int64_t batch = crops[0].defined() && crops[0].dim() == 4 ? crops[0].size(0) : -1;
  for (size_t i = 0; i < crops.size(); ++i) {
    const int64_t size = i < 2 ? config_.crops.global_crop_size : config_.crops.local_crop_size;
    const auto& c = crops[i];
    if (!c.defined() || c.dim() != 4 || c.size(0) != batch || batch < 1 ||
        c.size(1) != config_.model.in_channels || c.size(2) != size || c.size(3) != size ||
        !c.is_floating_point()) {
      std::ostringstream got;
      if (c.defined()) {
        got << c.sizes() << " " << c.scalar_type();
      } else {
        got << "undefined";
      }
      return absl::InvalidArgumentError(absl::StrCat("Step: crop ", i, " must be a float tensor [",
                                                     batch, ", ", config_.model.in_channels, ", ",
                                                     size, ", ", size, "], got ", got.str()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StepResult> Trainer::Step(const std::vector<torch::Tensor>& crops) {
  const auto start = std::chrono::steady_clock::now();
  DINO_RETURN_IF_ERROR(CheckCrops(crops));
  StepResult r;
  r.step = step_;
  r.epoch = epoch();
  const ScheduleValues sv = SchedulesAt(config_, step_);
  r.lr = sv.lr;
  r.weight_decay = sv.weight_decay;
  r.teacher_momentum = sv.teacher_momentum;
  r.teacher_temp = sv.teacher_temp;

  torch::Tensor teacher_out;
  LossOutput loss;
  if (micro_batches_ > 1) {
    optimizer_->ZeroGrad();
    sync_->BeginStep();
    DINO_RETURN_IF_ERROR(SplitForwardBackward(crops, sv.teacher_temp, &loss, &teacher_out));
  } else {
    DINO_RETURN_IF_ERROR(Forward(crops, sv.teacher_temp, &loss, &teacher_out));
  }
  r.loss = loss.loss.item<double>();
  if (!std::isfinite(r.loss)) {
    return WithFailureKind(absl::FailedPreconditionError(absl::StrCat(
                               "non-finite loss (", r.loss, ") at step ", step_, " (epoch ",
                               r.epoch, "); training stopped, the model was not updated")),
                           FailureKind::kNonFiniteLoss);
  }
  r.teacher_entropy = loss.teacher_entropy;
  r.batch_mean_entropy = loss.batch_mean_entropy;
  r.kl_teacher_student = loss.kl_teacher_student;

  if (micro_batches_ == 1) {
    DINO_RETURN_IF_ERROR(TorchCall(absl::StrCat("step ", step_, ": backward"), [&] {
      optimizer_->ZeroGrad();
      sync_->BeginStep();
      loss.loss.backward();
    }));
  }
  loss.loss = torch::Tensor();
  const auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  auto sync_start = std::chrono::steady_clock::now();
  DINO_RETURN_IF_ERROR(Annotate(sync_->FinishStep(), absl::StrCat("step ", step_)));
  r.allreduce_seconds = seconds_since(sync_start);
  DINO_RETURN_IF_ERROR(TorchCall(absl::StrCat("step ", step_, ": update"), [&] {
    optimizer_->ClipPerParameter(config_.optim.clip_grad);
    if (r.epoch < config_.optim.freeze_last_layer) optimizer_->CancelLastLayerGradients();
    optimizer_->SetSchedule(sv.lr, sv.weight_decay);
    optimizer_->Step();
    ema_->Update(sv.teacher_momentum);
  }));
  sync_start = std::chrono::steady_clock::now();
  DINO_RETURN_IF_ERROR(
      Annotate(loss_->UpdateCenter(teacher_out, collectives_), absl::StrCat("step ", step_)));
  r.allreduce_seconds += seconds_since(sync_start);
  DINO_ASSIGN_OR_RETURN(r.center_norm, TorchCallOr("center norm", [&] {
                          return loss_->center().norm().item<double>();
                        }));
  ++step_;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

absl::Status Trainer::Forward(const std::vector<torch::Tensor>& crops, double teacher_temp,
                              LossOutput* loss, torch::Tensor* teacher_out) {
  return TorchCall(absl::StrCat("step ", step_, ": forward"), [&] {
    std::vector<torch::Tensor> on_device;
    on_device.reserve(crops.size());
    for (const auto& c : crops) on_device.push_back(c.to(device_, torch::kFloat).contiguous());
    compat::AutocastGuard autocast(device_, config_.bf16);
    {
      torch::NoGradGuard no_grad;
      *teacher_out = teacher_->forward({on_device[0], on_device[1]}).to(torch::kFloat);
    }
    auto student_out = student_->forward(on_device);
    *loss = loss_->Compute(student_out, *teacher_out, teacher_temp);
  });
}

}  // namespace dino
