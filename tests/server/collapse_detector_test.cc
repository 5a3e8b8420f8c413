#include "server/collapse_detector.h"

#include "gtest/gtest.h"
#include "spec/job_spec.h"

namespace dino::server {
namespace {

dino::v1::CollapseSpec Spec() {
  dino::v1::JobSpec spec;
  spec.mutable_optim()->set_warmup_epochs(2);
  spec.mutable_collapse()->set_consecutive_reports(3);
  spec::ApplyJobSpecDefaults(&spec);
  return spec.collapse();
}

dino::v1::StepStats Stats(int64_t step, int64_t epoch, double kl, double batch_entropy) {
  dino::v1::StepStats s;
  s.set_step(step);
  s.set_epoch(epoch);
  s.set_kl(kl);
  s.set_batch_mean_entropy(batch_entropy);
  return s;
}

TEST(CollapseDetectorTest, HealthySeriesNeverWarns) {
  CollapseDetector detector(Spec());
  for (int step = 0; step < 100; ++step) {
    EXPECT_FALSE(detector.Observe(Stats(step, 2 + step / 10, 0.5, 3.0)).has_value());
  }
}

TEST(CollapseDetectorTest, LowKlForMReportsAfterWarmupWarnsOnce) {
  CollapseDetector detector(Spec());
  // During warm-up (epochs 0-1) a low KL is ignored.
  for (int step = 0; step < 10; ++step) {
    EXPECT_FALSE(detector.Observe(Stats(step, 1, 0.0, 3.0)).has_value());
  }
  EXPECT_FALSE(detector.Observe(Stats(10, 2, 0.0, 3.0)).has_value());
  EXPECT_FALSE(detector.Observe(Stats(11, 2, 0.0, 3.0)).has_value());
  auto warning = detector.Observe(Stats(12, 2, 0.0, 3.0));
  ASSERT_TRUE(warning.has_value());
  EXPECT_EQ(warning->metric(), "kl");
  EXPECT_EQ(warning->step(), 12);
  EXPECT_EQ(warning->consecutive_reports(), 3);
  EXPECT_FALSE(detector.Observe(Stats(13, 2, 0.0, 3.0)).has_value());  // Once per run.
}

TEST(CollapseDetectorTest, AnInterruptedRunDoesNotWarn) {
  CollapseDetector detector(Spec());
  EXPECT_FALSE(detector.Observe(Stats(1, 3, 0.0, 3.0)).has_value());
  EXPECT_FALSE(detector.Observe(Stats(2, 3, 0.0, 3.0)).has_value());
  EXPECT_FALSE(detector.Observe(Stats(3, 3, 0.4, 3.0)).has_value());
  EXPECT_FALSE(detector.Observe(Stats(4, 3, 0.0, 3.0)).has_value());
  EXPECT_FALSE(detector.Observe(Stats(5, 3, 0.0, 3.0)).has_value());
}

TEST(CollapseDetectorTest, BatchMeanEntropyCollapseWarns) {
  CollapseDetector detector(Spec());
  std::optional<dino::v1::CollapseWarning> warning;
  for (int step = 0; step < 3; ++step) warning = detector.Observe(Stats(step, 5, 0.3, 0.001));
  ASSERT_TRUE(warning.has_value());
  EXPECT_EQ(warning->metric(), "batch_mean_entropy");
  EXPECT_DOUBLE_EQ(warning->threshold(), 0.05);
}

}  // namespace
}  // namespace dino::server
