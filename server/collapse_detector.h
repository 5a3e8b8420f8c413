// CollapseDetector: flags DINO collapse from a job's progress reports (see DINO.md, "Monitoring").
//
// A report counts as "collapsing" on a metric when KL(teacher || student) < collapse.min_kl, or
// the batch-mean teacher entropy < collapse.min_batch_mean_entropy. After
// collapse.consecutive_reports such reports in a row (reports before collapse.ignore_before_epoch
// are ignored), Observe returns a warning, once per run of collapsing reports.
//
// Ownership: a value per job, kept by the coordinator; not persisted (after a coordinator restart
// the count starts again, which only delays a warning).
// Thread-safety: none; the owner serialises calls. Failure: none.
#pragma once

#include <cstdint>
#include <optional>

#include "dino/v1/job.pb.h"

namespace dino::server {

class CollapseDetector {
 public:
  // `spec` must have defaults applied.
  explicit CollapseDetector(const dino::v1::CollapseSpec& spec) : spec_(spec) {}

  std::optional<dino::v1::CollapseWarning> Observe(const dino::v1::StepStats& stats);

 private:
  dino::v1::CollapseSpec spec_;
  int64_t low_kl_ = 0;
  int64_t low_entropy_ = 0;
};

}  // namespace dino::server
