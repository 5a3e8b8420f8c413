// CollapseDetector: flags DINO collapse from a job's progress reports (docs/dino.md,
// "Monitoring").
//
// A report counts as "collapsing" on a metric when KL(teacher || student) < collapse.min_kl, or
// the batch-mean teacher entropy < collapse.min_batch_mean_entropy. After
// collapse.consecutive_reports such reports in a row (reports before collapse.ignore_before_epoch
// are ignored), Observe returns a warning, once per run of collapsing reports.
//
// Ownership: a value made for each progress report from the job's stored CollapseStreak; the
// coordinator stores streak() with the job in the report's transaction, so the count survives a
// coordinator restart.
// Thread-safety: none; the owner serialises calls. Failure: none.
#pragma once

#include <cstdint>
#include <optional>

#include "dino/v1/job.pb.h"

namespace dino::server {

class CollapseDetector {
 public:
  // `spec` must have defaults applied.
  explicit CollapseDetector(const dino::v1::CollapseSpec& spec,
                            const dino::v1::CollapseStreak& streak = {})
      : spec_(spec), streak_(streak) {}

  std::optional<dino::v1::CollapseWarning> Observe(const dino::v1::StepStats& stats);
  // The counts after the reports observed so far.
  const dino::v1::CollapseStreak& streak() const { return streak_; }

 private:
  dino::v1::CollapseSpec spec_;
  dino::v1::CollapseStreak streak_;
};

}  // namespace dino::server
