// Converts a job's dino.v1.JobSpec (as the coordinator sends it in an Assignment, defaults
// applied) into the RunOptions of one rank's TrainingRun, field by field and unchanged: nothing is
// scaled or derived here (the blur σ range, for one, is the spec's at every crop size). A field
// the spec leaves unset takes the default of spec/defaults.h, as the coordinator would have
// filled it in (spec::ApplyJobSpecDefaults).
//
// Thread-safety: a pure function. Failure: INVALID_ARGUMENT naming the spec field for values the
// trainer cannot use (unknown dataset kind, bad preset, a failing TrainConfig::Validate).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/path_confinement.h"
#include "dino/v1/job.pb.h"
#include "worker/run/training_run.h"

namespace dino::agent {

struct LocalResources {
  std::string device = "cpu";  // This worker's device, "cpu" or "cuda:N".
  int threads = 0;             // The worker's --threads; 0 = all cores.
  std::string work_dir;        // Per-attempt directory for checkpoints and the export.
  // The worker's --data-roots: image folders check every file against them when opened.
  PathConfinement data_roots = PathConfinement::Unconfined();
};

absl::StatusOr<run::RunOptions> RunOptionsFromSpec(const dino::v1::JobSpec& spec,
                                                   const LocalResources& local);

// The worker's own check of the spec's data paths (data.path, data.labels_path, data.eval_path,
// data.eval_labels_path) against its --data-roots, right before it reads them: the coordinator
// checked them against its roots when the job was submitted, but only the worker sees the files
// and symlinks that will actually be opened. INVALID_ARGUMENT naming the field and the roots.
absl::Status CheckDataPaths(const dino::v1::JobSpec& spec, const PathConfinement& roots);

}  // namespace dino::agent
