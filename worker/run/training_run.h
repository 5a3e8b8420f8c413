// TrainingRun: one rank's whole training run: dataset → multi-crop loader → Trainer, with
// checkpoints, periodic k-NN evaluation, progress reports, cancellation and the final export of
// the teacher backbone. The standalone trainer (dino-train, the pre-service demo) and the worker
// agent both drive training through this class; it knows nothing of gRPC.
//
// Usage:
//   DINO_ASSIGN_OR_RETURN(auto run, TrainingRun::Create(options, &collectives, &sync, fs));
//   DINO_ASSIGN_OR_RETURN(RunResult result, run->Run(callbacks));
//
// Rank 0 writes checkpoints (every `checkpoint_every_steps`, at each epoch end and at the end) to
// `work_dir/checkpoints/`, evaluates (every `eval_every_epochs` and at the end, when an eval split
// is given) and exports `work_dir/teacher_backbone.pth`; other ranks only train. A resumed run
// restores the Trainer and the loader position from `resume_from` and continues the same step
// sequence as an uninterrupted run.
//
// Ownership: the caller owns `collectives`, `sync` and `fs` and keeps them alive while the run
// exists. Thread-safety: Run() on one thread; `should_stop` may read state set by other threads.
// Failure: INVALID_ARGUMENT for bad options, the dataset's Status for bad data, the Trainer's
// Status for a non-finite loss (FAILED_PRECONDITION) or a collective abort (ABORTED); a cancelled
// run is not an error (RunResult::cancelled).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/file_system.h"
#include "spec/defaults.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/dino/collectives.h"
#include "worker/dino/config.h"
#include "worker/dino/failure_kind.h"
#include "worker/dino/knn.h"
#include "worker/dino/trainer.h"

namespace dino::run {

struct RunOptions {
  TrainConfig train;  // steps_per_epoch is filled in from the loader.
  data::DatasetSpec data;
  data::AugmentOptions augment;
  int64_t loader_threads = 0;  // 0: one per core.
  int64_t prefetch_batches = 4;
  // Labelled splits for the k-NN evaluation; both or neither.
  std::optional<data::DatasetSpec> eval_train;
  std::optional<data::DatasetSpec> eval_test;
  int64_t eval_max_train = 0;  // 0 = all.
  int64_t eval_max_test = 0;
  // The job spec's defaults (spec/defaults.h) where the spec has the same setting.
  int64_t eval_every_epochs = spec::kJobSpecDefaults.eval.every_epochs;  // 0: only at the end.
  int64_t knn_k = spec::kJobSpecDefaults.eval.knn_k;
  double knn_temperature = spec::kJobSpecDefaults.eval.knn_temperature;
  // 0: only at epoch ends and the end.
  int64_t checkpoint_every_steps = spec::kJobSpecDefaults.checkpoint.every_steps;
  int64_t progress_every_steps = spec::kJobSpecDefaults.progress_every_steps;
  // Newest checkpoint files kept in work_dir/checkpoints.
  int64_t keep_checkpoints = spec::kJobSpecDefaults.checkpoint.keep_last;
  std::string work_dir;
  std::string resume_from;  // A checkpoint path, or empty for a fresh run.
};

struct Progress {
  StepResult step;
  int64_t total_steps = 0;
  double images_per_second = 0;   // Global (all ranks), over the last reporting window.
  double data_wait_fraction = 0;  // Share of wall time this rank waited for batches.
};

// One step of this rank, for per-step metrics.
struct StepReport {
  StepResult step;
  int64_t images = 0;            // Images in this rank's batch (its share of the global batch).
  double data_wait_seconds = 0;  // Time this rank waited for the step's batch.
};

// A checkpoint file that rank 0 has just written to its own work dir, before anything is uploaded.
// Not to be confused with dino.v1.CheckpointInfo, the coordinator's record of a checkpoint it has
// received, verified and committed.
struct LocalCheckpoint {
  std::string path;
  int64_t step = 0;  // Steps completed when it was written.
  int64_t epoch = 0;
  bool final = false;
  StepResult last_step;            // Statistics of the step just before it.
  std::optional<double> knn_top1;  // When evaluated at this step.
};

// A failing Status from Create or Run carries a FailureKind (worker/dino/failure_kind.h): kData,
// kCheckpoint, kConfig, kTrain, or the Trainer's kNonFiniteLoss, so that the worker can tell a bad
// dataset from a corrupt checkpoint, a bad config or a diverged run.

struct EvalInfo {
  int64_t epoch = 0;  // Epochs completed.
  int64_t step = 0;
  KnnResult knn;
};

struct RunCallbacks {
  std::function<void(const Progress&)> on_progress;
  // After every step, on every rank (on_progress only every progress_every_steps).
  std::function<void(const StepReport&)> on_step;
  // A failing Status from on_checkpoint stops the run with that Status.
  std::function<absl::Status(const LocalCheckpoint&)> on_checkpoint;
  std::function<void(const EvalInfo&)> on_eval;
  // Polled before every step; true stops the run at that step boundary (cancel).
  std::function<bool()> should_stop;
  // Progress of a long evaluation: (images embedded, images in all).
  std::function<void(int64_t, int64_t)> on_eval_progress;
};

struct RunResult {
  int64_t steps = 0;
  bool cancelled = false;
  std::optional<KnnResult> knn;  // The last evaluation, if any.
  int64_t knn_step = -1;         // The step it was made at.
  std::string last_checkpoint;   // Empty on ranks other than 0.
  std::string exported_teacher;  // Empty unless rank 0 finished.
  double train_seconds = 0;      // From the first step to the last, evaluations between included.
  double eval_seconds = 0;       // Of train_seconds, the k-NN evaluations between epochs.
};

class TrainingRun {
 public:
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Create(RunOptions options,
                                                             Collectives* collectives,
                                                             GradientSync* sync, FileSystem* fs);
  ~TrainingRun();

  absl::StatusOr<RunResult> Run(const RunCallbacks& callbacks);

  // The k-NN evaluation of the teacher as it is now (at initialisation, or as resumed), without
  // training: the baseline a trained teacher is compared with. Calls callbacks.on_eval_progress
  // and callbacks.on_eval like an evaluation during Run. FAILED_PRECONDITION when no eval split is
  // configured or on a rank other than 0.
  absl::StatusOr<KnnResult> EvaluateTeacher(const RunCallbacks& callbacks);

  const RunOptions& options() const { return options_; }
  Trainer& trainer() { return *trainer_; }
  int64_t steps_per_epoch() const { return options_.train.steps_per_epoch; }

 private:
  TrainingRun(RunOptions options, Collectives* collectives, FileSystem* fs);
  absl::Status OpenData();
  absl::Status Resume(const data::LoaderOptions& loader_options);
  absl::StatusOr<RunResult> RunSteps(const RunCallbacks& callbacks);
  absl::Status WriteCheckpoint(bool final, const StepResult& last, const RunCallbacks& callbacks,
                               RunResult* result);
  // Evaluates on rank 0 when an eval split is configured; returns the top-1 if it evaluated.
  absl::StatusOr<std::optional<double>> Evaluate(const RunCallbacks& callbacks, RunResult* result);

  RunOptions options_;
  Collectives* collectives_;
  FileSystem* fs_;
  std::shared_ptr<data::Dataset> dataset_;
  data::NormalizationStats stats_;
  data::LoaderOptions loader_options_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<Trainer> trainer_;
  std::shared_ptr<data::Dataset> eval_train_;
  std::shared_ptr<data::Dataset> eval_test_;
};

}  // namespace dino::run
