#include "server/collapse_detector.h"

namespace dino::server {

std::optional<dino::v1::CollapseWarning> CollapseDetector::Observe(
    const dino::v1::StepStats& stats) {
  if (stats.epoch() < spec_.ignore_before_epoch()) return std::nullopt;
  low_kl_ = stats.kl() < spec_.min_kl() ? low_kl_ + 1 : 0;
  low_entropy_ = stats.batch_mean_entropy() < spec_.min_batch_mean_entropy() ? low_entropy_ + 1 : 0;
  // Warn exactly when a run reaches M, so a long collapse gives one warning per metric.
  dino::v1::CollapseWarning warning;
  if (low_kl_ == spec_.consecutive_reports()) {
    warning.set_metric("kl");
    warning.set_value(stats.kl());
    warning.set_threshold(spec_.min_kl());
    warning.set_consecutive_reports(low_kl_);
  } else if (low_entropy_ == spec_.consecutive_reports()) {
    warning.set_metric("batch_mean_entropy");
    warning.set_value(stats.batch_mean_entropy());
    warning.set_threshold(spec_.min_batch_mean_entropy());
    warning.set_consecutive_reports(low_entropy_);
  } else {
    return std::nullopt;
  }
  warning.set_step(stats.step());
  return warning;
}

}  // namespace dino::server
