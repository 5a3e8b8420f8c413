// Trainer: one rank's DINO training state and step (student, EMA teacher, DINOLoss, AdamW).
//
// Usage:
//   DINO_ASSIGN_OR_RETURN(auto trainer, dino::Trainer::Create(config, &collectives, &sync));
//   DINO_ASSIGN_OR_RETURN(dino::StepResult r, trainer->Step(crops));  // crops[0..1] global
//
// Create() validates the config, sets LibTorch's intra-op threads, seeds the default CPU
// generator with config.seed, builds the student, broadcasts its parameters and buffers from rank
// 0 through Collectives::Broadcast, copies them into the teacher and attaches the trainable
// parameters to GradientSync. Step() runs: schedules for the global iteration → teacher forward
// (global crops, no grad) and student forward (all crops) under bf16 autocast on CUDA → loss →
// finite check → GradientSync::BeginStep → backward → FinishStep → per-parameter clipping →
// last-layer gradients dropped in freeze epochs → AdamW step → EMA → center update.
// On a CPU run of one rank (config.micro_batches, config.h), the forward, loss and backward run
// as concurrent parts of the batch on threads of their own (micro_batch.h): each part's loss is
// weighted by its share of the batch, the parts' gradients are summed in part order and the
// statistics combined exactly, so the step equals the unsplit one up to float rounding and stays
// deterministic. Drop-path masks then come from per-part generators seeded from the checkpointed
// drop-path generator (other masks than an unsplit run draws, equally distributed).
// Checkpointing is in checkpoint.h; the state is written with SaveState/LoadState.
//
// Ownership: the Trainer owns its modules; the caller owns `collectives` and `sync` and keeps
// them alive for the Trainer's lifetime. Thread-safety: one training thread.
// Failure: INVALID_ARGUMENT for a bad config or bad crop shapes; FAILED_PRECONDITION
// "non-finite loss ... at step N" tagged FailureKind::kNonFiniteLoss (failure_kind.h; no
// parameter, moment or center is changed); Collectives /
// GradientSync errors (ABORTED) are returned as they are; other LibTorch errors via TorchCall.
// After an error past the finite check (a failed collective) the state may be partially updated:
// the caller abandons the attempt and resumes from a checkpoint.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_system.h"
#include "worker/dino/collectives.h"
#include "worker/dino/config.h"
#include "worker/dino/loss.h"
#include "worker/dino/micro_batch.h"
#include "worker/dino/multicrop.h"
#include "worker/dino/optimizer.h"
#include "worker/dino/teacher.h"

namespace dino {

struct StepResult {
  int64_t step = 0;   // The global iteration this result belongs to (0-based).
  int64_t epoch = 0;  // step / steps_per_epoch.
  double loss = 0;
  double lr = 0;
  double weight_decay = 0;
  double teacher_momentum = 0;
  double teacher_temp = 0;
  double teacher_entropy = 0;     // Mean per-sample teacher entropy (this rank).
  double batch_mean_entropy = 0;  // Entropy of this rank's batch-mean teacher distribution.
  double kl_teacher_student = 0;  // KL(teacher ‖ student), averaged over the loss pairs.
  double center_norm = 0;         // ‖C‖ after this step's update.
  double seconds = 0;             // Wall time of Step().
  // Wall time Step() was blocked in collectives: waiting for the gradient all-reduce after
  // backward (what did not overlap with it) and the centre all-reduce. 0 on one rank's no-op sync.
  double allreduce_seconds = 0;
};

// What the caller stores in a checkpoint beside the training state: the loader position (epoch
// and step within it) and opaque loader state bytes (e.g. its RNG), returned as given on load.
struct CheckpointExtras {
  int64_t loader_epoch = 0;
  int64_t loader_step_in_epoch = 0;
  std::string loader_state;
};

// The schedule values of one iteration.
struct ScheduleValues {
  double lr, weight_decay, teacher_momentum, teacher_temp;
};
ScheduleValues SchedulesAt(const TrainConfig& config, int64_t step);

class Trainer {
 public:
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainConfig& config,
                                                         Collectives* collectives,
                                                         GradientSync* sync);

  absl::StatusOr<StepResult> Step(const std::vector<torch::Tensor>& crops);

  int64_t step() const { return step_; }
  int64_t epoch() const { return step_ / config_.steps_per_epoch; }
  const TrainConfig& config() const { return config_; }
  // The parts each batch is split into (config.micro_batches resolved; 1 = no split).
  int64_t micro_batches() const { return micro_batches_; }
  torch::Device device() const { return device_; }
  MultiCropWrapper& student() { return student_; }
  MultiCropWrapper& teacher() { return teacher_; }
  const MultiCropWrapper& teacher() const { return teacher_; }
  VisionTransformer teacher_backbone() const { return teacher_->backbone; }
  // Trainable student parameters, in the order attached to GradientSync.
  std::vector<torch::Tensor> StudentParameters() const { return optimizer_->trainable(); }
  std::vector<torch::Tensor> TeacherParameters() const { return teacher_->parameters(); }
  torch::Tensor center() const { return loss_->center(); }

  // Checkpoints (implemented in checkpoint.cc; file format in checkpoint.h). Save writes
  // atomically through `fs`; Load restores this Trainer in place and returns the extras.
  absl::StatusOr<std::string> CheckpointBytes(const CheckpointExtras& extras) const;
  absl::Status SaveCheckpoint(FileSystem* fs, const std::string& path,
                              const CheckpointExtras& extras) const;
  absl::StatusOr<CheckpointExtras> LoadCheckpointBytes(absl::string_view bytes,
                                                       absl::string_view source);
  absl::StatusOr<CheckpointExtras> LoadCheckpoint(FileSystem* fs, const std::string& path);

  // Whole training state (modules, optimizer, center, counters, RNG states) to/from an archive.
  // LoadState expects the same architecture (checkpoint.h checks the config first).
  absl::Status SaveState(torch::serialize::OutputArchive& archive) const;
  absl::Status LoadState(torch::serialize::InputArchive& archive);

 private:
  Trainer(const TrainConfig& config, Collectives* collectives, GradientSync* sync);
  absl::Status Init();
  absl::Status InitMicroBatches(int64_t threads);
  absl::Status CheckCrops(const std::vector<torch::Tensor>& crops) const;
  // Teacher and student forward and the loss of the whole batch (the backward follows in Step).
  absl::Status Forward(const std::vector<torch::Tensor>& crops, double teacher_temp,
                       LossOutput* loss, torch::Tensor* teacher_out);
  // The same for micro_batches_ > 1 parts, including the backward: the students' gradients are
  // left summed in the parameters' grads; `loss->loss` is detached.
  absl::Status SplitForwardBackward(const std::vector<torch::Tensor>& crops, double teacher_temp,
                                    LossOutput* loss, torch::Tensor* teacher_out);

  TrainConfig config_;
  Collectives* collectives_;
  GradientSync* sync_;
  torch::Device device_;
  MultiCropWrapper student_{nullptr};
  MultiCropWrapper teacher_{nullptr};
  std::unique_ptr<DINOLoss> loss_;
  std::unique_ptr<DinoOptimizer> optimizer_;
  std::optional<TeacherEma> ema_;
  at::Generator drop_path_generator_;
  int64_t micro_batches_ = 1;
  std::unique_ptr<MicroBatchRunner> micro_runner_;  // set when micro_batches_ > 1
  int64_t step_ = 0;
};

}  // namespace dino
