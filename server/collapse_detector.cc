#include "server/collapse_detector.h"

namespace dino::server {

std::optional<dino::v1::CollapseWarning> CollapseDetector::Observe(
    const dino::v1::StepStats& stats) {
  if (stats.epoch() < spec_.ignore_before_epoch()) return std::nullopt;
  const int64_t low_kl = stats.kl() < spec_.min_kl() ? streak_.low_kl_reports() + 1 : 0;
  const int64_t low_entropy = stats.batch_mean_entropy() < spec_.min_batch_mean_entropy()
                                  ? streak_.low_batch_mean_entropy_reports() + 1
                                  : 0;
  streak_.set_low_kl_reports(low_kl);
  streak_.set_low_batch_mean_entropy_reports(low_entropy);
  // Warn exactly when a run reaches M, so a long collapse gives one warning per metric.
  dino::v1::CollapseWarning warning;
  if (low_kl == spec_.consecutive_reports()) {
    warning.set_metric("kl");
    warning.set_value(stats.kl());
    warning.set_threshold(spec_.min_kl());
    warning.set_consecutive_reports(low_kl);
  } else if (low_entropy == spec_.consecutive_reports()) {
    warning.set_metric("batch_mean_entropy");
    warning.set_value(stats.batch_mean_entropy());
    warning.set_threshold(spec_.min_batch_mean_entropy());
    warning.set_consecutive_reports(low_entropy);
  } else {
    return std::nullopt;
  }
  warning.set_step(stats.step());
  return warning;
}

}  // namespace dino::server
