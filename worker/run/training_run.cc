#include "worker/run/training_run.h"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "worker/dino/cpu_allocator.h"
#include "worker/dino/export.h"
#include "worker/dino/torch_status.h"
#include "worker/dist/c10d_collectives.h"
#include "worker/run/evaluate.h"

namespace dino::run {
namespace {

constexpr char kCheckpointPrefix[] = "ckpt-";
constexpr char kCheckpointSuffix[] = ".dino";

absl::Status CheckOptions(const RunOptions& o) {
  if (o.work_dir.empty()) return absl::InvalidArgumentError("work_dir must be set");
  if (o.eval_train.has_value() != o.eval_test.has_value()) {
    return absl::InvalidArgumentError(
        "the k-NN evaluation needs both eval_train and eval_test, or neither");
  }
  if (o.progress_every_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("progress_every_steps must be >= 1, got ", o.progress_every_steps));
  }
  if (o.checkpoint_every_steps < 0 || o.eval_every_epochs < 0 || o.keep_checkpoints < 1 ||
      o.prefetch_batches < 1 || o.loader_threads < 0) {
    return absl::InvalidArgumentError(
        "checkpoint_every_steps, eval_every_epochs and loader_threads must be >= 0; "
        "keep_checkpoints and prefetch_batches >= 1");
  }
  return absl::OkStatus();
}

// DINO_RETURN_IF_ERROR that tags the failure with a FailureKind.
#define DINO_RETURN_IN_PHASE(expr, kind)                          \
  do {                                                            \
    absl::Status dino_phase_status = (expr);                      \
    if (!dino_phase_status.ok()) {                                \
      return WithFailureKind(std::move(dino_phase_status), kind); \
    }                                                             \
  } while (0)

std::string CheckpointPath(const std::string& dir, int64_t step) {
  return absl::StrFormat("%s/%s%010d%s", dir, kCheckpointPrefix, step, kCheckpointSuffix);
}

}  // namespace

TrainingRun::TrainingRun(RunOptions options, Collectives* collectives, FileSystem* fs)
    : options_(std::move(options)), collectives_(collectives), fs_(fs) {}

TrainingRun::~TrainingRun() {
  // The model, optimizer and batches go first, then the CPU blocks they left cached: an idle
  // worker holds no training memory.
  loader_.reset();
  trainer_.reset();
  if (CachingCpuAllocator* cache = InstalledCachingCpuAllocator()) cache->Release();
}

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Create(RunOptions options,
                                                                 Collectives* collectives,
                                                                 GradientSync* sync,
                                                                 FileSystem* fs) {
  DINO_RETURN_IN_PHASE(CheckOptions(options), FailureKind::kConfig);
  std::unique_ptr<TrainingRun> run(new TrainingRun(std::move(options), collectives, fs));
  RunOptions& o = run->options_;
  TrainConfig& train = o.train;

  absl::Status data_status = run->OpenData();
  DINO_RETURN_IN_PHASE(data_status, FailureKind::kData);

  // The training config is the single source of the crop geometry and the image channels.
  train.world_size = collectives->world_size();
  train.model.in_channels = run->dataset_->channels();
  train.model.image_size = train.crops.global_crop_size;
  o.augment.global1.crop_size = train.crops.global_crop_size;
  o.augment.global2.crop_size = train.crops.global_crop_size;
  o.augment.local.crop_size = train.crops.local_crop_size;
  o.augment.n_local_crops = train.crops.n_local_crops;

  data::LoaderOptions lo;
  lo.batch_size = train.optim.batch_size_per_rank;
  lo.rank = collectives->rank();
  lo.world_size = collectives->world_size();
  lo.seed = train.seed;
  lo.prefetch_depth = o.prefetch_batches;
  lo.threads = o.loader_threads > 0
                   ? static_cast<int>(o.loader_threads)
                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  absl::StatusOr<torch::Device> device =
      TorchCallOr("parsing the device", [&] { return torch::Device(train.device); });
  DINO_RETURN_IN_PHASE(device.status(), FailureKind::kConfig);
  lo.device = *device;
  run->loader_options_ = lo;
  absl::StatusOr<std::unique_ptr<data::Loader>> loader =
      data::Loader::Create(run->dataset_, lo, o.augment, run->stats_);
  DINO_RETURN_IN_PHASE(loader.status(), FailureKind::kConfig);
  run->loader_ = std::move(*loader);
  train.steps_per_epoch = run->loader_->steps_per_epoch();

  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(train, collectives, sync);
  // A failed collective while broadcasting the initial weights is a training-time failure.
  DINO_RETURN_IN_PHASE(trainer.status(), absl::IsAborted(trainer.status()) ? FailureKind::kTrain
                                                                           : FailureKind::kConfig);
  run->trainer_ = std::move(*trainer);
  if (!o.resume_from.empty()) {
    absl::Status resume = run->Resume(lo);
    DINO_RETURN_IN_PHASE(resume, FailureKind::kCheckpoint);
    if (collectives->world_size() > 1) {
      // Every rank loaded its own copy: a cheap checksum all-reduce proves they agree.
      std::vector<torch::Tensor> state = run->trainer_->StudentParameters();
      for (const torch::Tensor& t : run->trainer_->TeacherParameters()) state.push_back(t);
      state.push_back(run->trainer_->center());
      DINO_RETURN_IN_PHASE(dist::VerifySameParameters(collectives, state, run->trainer_->device()),
                           FailureKind::kTrain);
    }
    DINO_LOG(INFO) << "resumed from " << o.resume_from << " at step " << run->trainer_->step();
  }
  if (collectives->rank() == 0) {
    DINO_RETURN_IN_PHASE(fs->CreateDirs(o.work_dir + "/checkpoints"), FailureKind::kTrain);
  }
  return run;
}

absl::Status TrainingRun::OpenData() {
  DINO_ASSIGN_OR_RETURN(dataset_, data::OpenDataset(options_.data));
  DINO_ASSIGN_OR_RETURN(stats_, data::EstimateNormalization(*dataset_));
  if (options_.eval_train.has_value()) {
    DINO_ASSIGN_OR_RETURN(eval_train_, data::OpenDataset(*options_.eval_train));
    DINO_ASSIGN_OR_RETURN(eval_test_, data::OpenDataset(*options_.eval_test));
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::Resume(const data::LoaderOptions& loader_options) {
  const std::string& path = options_.resume_from;
  DINO_ASSIGN_OR_RETURN(std::string bytes, fs_->ReadFile(path));
  DINO_ASSIGN_OR_RETURN(CheckpointExtras extras, trainer_->LoadCheckpointBytes(bytes, path));
  // Rank 0 wrote the checkpoint; every rank resumes at the same (epoch, step) of its own shard.
  data::LoaderOptions writer = loader_options;
  writer.rank = 0;
  absl::StatusOr<data::LoaderPosition> position =
      data::DecodeLoaderState(extras.loader_state, writer, dataset_->size());
  if (!position.ok()) return Annotate(position.status(), path);
  return loader_->Seek(*position);
}

absl::Status TrainingRun::WriteCheckpoint(bool final, const StepResult& last,
                                          const RunCallbacks& callbacks, RunResult* result) {
  if (collectives_->rank() != 0) return absl::OkStatus();
  const std::string dir = options_.work_dir + "/checkpoints";
  CheckpointExtras extras;
  const data::LoaderPosition position = loader_->position();
  extras.loader_epoch = position.epoch;
  extras.loader_step_in_epoch = position.step;
  extras.loader_state = data::EncodeLoaderState(position, loader_options_, dataset_->size());
  LocalCheckpoint info;
  info.step = trainer_->step();
  info.epoch = trainer_->epoch();
  info.final = final;
  info.last_step = last;
  if (result->knn.has_value() && result->knn_step == info.step) info.knn_top1 = result->knn->top1;
  info.path = CheckpointPath(dir, info.step);
  if (result->last_checkpoint == info.path && !final) return absl::OkStatus();
  DINO_RETURN_IF_ERROR(trainer_->SaveCheckpoint(fs_, info.path, extras));
  result->last_checkpoint = info.path;

  // Prune the oldest of our own checkpoint files beyond keep_checkpoints.
  DINO_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->ListDir(dir));
  std::vector<std::string> ours;
  for (const std::string& n : names) {
    if (absl::StartsWith(n, kCheckpointPrefix) && absl::EndsWith(n, kCheckpointSuffix)) {
      ours.push_back(n);
    }
  }
  std::sort(ours.begin(), ours.end());
  for (size_t i = 0; i + options_.keep_checkpoints < ours.size(); ++i) {
    absl::Status s = fs_->DeleteFile(dir + "/" + ours[i]);
    if (!s.ok()) {
      DINO_LOG(WARNING) << "could not prune " << ours[i] << ": " << s;
    }
  }
  if (callbacks.on_checkpoint) DINO_RETURN_IF_ERROR(callbacks.on_checkpoint(info));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<double>> TrainingRun::Evaluate(const RunCallbacks& callbacks,
                                                            RunResult* result) {
  if (collectives_->rank() != 0 || eval_train_ == nullptr) return std::optional<double>();
  EvalOptions eo;
  eo.image_size = options_.train.crops.global_crop_size;
  eo.max_train = options_.eval_max_train;
  eo.max_test = options_.eval_max_test;
  eo.k = options_.knn_k;
  eo.temperature = options_.knn_temperature;
  eo.on_progress = callbacks.on_eval_progress;
  DINO_ASSIGN_OR_RETURN(KnnResult knn,
                        EvaluateKnn(trainer_->teacher_backbone(), *eval_train_, *eval_test_, stats_,
                                    eo, trainer_->device(), options_.train.bf16));
  result->knn = knn;
  result->knn_step = trainer_->step();
  if (callbacks.on_eval) {
    EvalInfo info;
    info.epoch = trainer_->epoch();
    info.step = trainer_->step();
    info.knn = knn;
    callbacks.on_eval(info);
  }
  return std::optional<double>(knn.top1);
}

absl::StatusOr<KnnResult> TrainingRun::EvaluateTeacher(const RunCallbacks& callbacks) {
  if (collectives_->rank() != 0 || eval_train_ == nullptr) {
    return absl::FailedPreconditionError(
        "the k-NN evaluation runs on rank 0 of a run with eval_train and eval_test");
  }
  RunResult result;
  DINO_RETURN_IF_ERROR(Evaluate(callbacks, &result).status());
  return *result.knn;
}

absl::StatusOr<RunResult> TrainingRun::Run(const RunCallbacks& callbacks) {
  absl::StatusOr<RunResult> result = RunSteps(callbacks);
  if (!result.ok()) return WithFailureKind(result.status(), FailureKind::kTrain);
  return result;
}

absl::StatusOr<RunResult> TrainingRun::RunSteps(const RunCallbacks& callbacks) {
  RunResult result;
  const TrainConfig& train = trainer_->config();
  const int64_t total = train.total_steps();
  const int64_t per_epoch = train.steps_per_epoch;
  const absl::Time start = absl::Now();
  absl::Time window_start = start;
  double window_wait_start = loader_->data_wait_seconds();
  int64_t window_steps = 0;
  StepResult last;

  while (trainer_->step() < total) {
    if (callbacks.should_stop && callbacks.should_stop()) {
      result.cancelled = true;
      break;
    }
    const double wait_before = loader_->data_wait_seconds();
    absl::StatusOr<data::MultiCropBatch> batch = loader_->Next();
    DINO_RETURN_IN_PHASE(batch.status(), FailureKind::kData);
    DINO_ASSIGN_OR_RETURN(last, trainer_->Step(batch->crops));
    if (callbacks.on_step) {
      StepReport report;
      report.step = last;
      report.images = batch->crops.empty() ? 0 : batch->crops[0].size(0);
      report.data_wait_seconds = loader_->data_wait_seconds() - wait_before;
      callbacks.on_step(report);
    }
    ++window_steps;
    const int64_t done = trainer_->step();

    if (done % options_.progress_every_steps == 0 || done == total) {
      const absl::Time now = absl::Now();
      const double seconds = std::max(1e-9, absl::ToDoubleSeconds(now - window_start));
      const double wait = loader_->data_wait_seconds();
      Progress p;
      p.step = last;
      p.total_steps = total;
      p.images_per_second = static_cast<double>(window_steps * train.global_batch()) / seconds;
      p.data_wait_fraction = std::min(1.0, (wait - window_wait_start) / seconds);
      if (callbacks.on_progress) callbacks.on_progress(p);
      window_start = now;
      window_wait_start = wait;
      window_steps = 0;
    }
    if (done == total) break;
    const bool epoch_end = done % per_epoch == 0;
    if (epoch_end && options_.eval_every_epochs > 0 &&
        (done / per_epoch) % options_.eval_every_epochs == 0) {
      const absl::Time eval_start = absl::Now();
      DINO_RETURN_IF_ERROR(Evaluate(callbacks, &result).status());
      result.eval_seconds += absl::ToDoubleSeconds(absl::Now() - eval_start);
    }
    const bool periodic =
        options_.checkpoint_every_steps > 0 && done % options_.checkpoint_every_steps == 0;
    if (epoch_end || periodic) {
      DINO_RETURN_IF_ERROR(WriteCheckpoint(/*final=*/false, last, callbacks, &result));
    }
  }
  result.steps = trainer_->step();
  result.train_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (result.cancelled) return result;

  DINO_RETURN_IF_ERROR(Evaluate(callbacks, &result).status());
  DINO_RETURN_IF_ERROR(WriteCheckpoint(/*final=*/true, last, callbacks, &result));
  if (collectives_->rank() == 0) {
    result.exported_teacher = options_.work_dir + "/teacher_backbone.pth";
    DINO_RETURN_IF_ERROR(ExportTeacherBackbone(*trainer_, fs_, result.exported_teacher));
  }
  return result;
}

}  // namespace dino::run
