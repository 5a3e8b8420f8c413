// TrainFunction: the training an AttemptRunner drives, as a seam. The real one (RealTraining)
// joins the attempt's c10d process group when world_size > 1 and runs run::TrainingRun; tests
// give the runner a function that only plays the callbacks, so the runner's control flow (cancel,
// abort, preempt, reporting) is tested without LibTorch training.
//
// Ownership: a TrainRequest borrows everything it points to for the duration of the call.
// Thread-safety: the function runs on the runner's thread; `abort` may be cancelled from any.
// Failure: the run's Status; a failure before training (the process group) is ABORTED.
#pragma once

#include <functional>

#include "absl/status/statusor.h"
#include "common/file_system.h"
#include "dino/v1/worker.pb.h"
#include "worker/agent/cancel_token.h"
#include "worker/run/training_run.h"

namespace dino::agent {

struct RunnerOptions;

struct TrainRequest {
  const dino::v1::Assignment* assignment = nullptr;
  const RunnerOptions* options = nullptr;
  run::RunOptions run_options;
  run::RunCallbacks callbacks;
  FileSystem* fs = nullptr;
  // Cancelled by AttemptRunner::Abort: breaks a collective in flight.
  CancelToken* abort = nullptr;
  // Called once the run is built, with the step it starts from (a resumed run's step).
  std::function<void(int64_t step)> on_start;
  // Called after the run returned and before the process group is torn down (rank 0 uploads the
  // checkpoint that was due while its peers still wait in their next collective).
  std::function<void()> before_teardown;
};

using TrainFunction = std::function<absl::StatusOr<run::RunResult>(TrainRequest request)>;

// The process group (world_size > 1) and run::TrainingRun.
absl::StatusOr<run::RunResult> RealTraining(TrainRequest request);

}  // namespace dino::agent
