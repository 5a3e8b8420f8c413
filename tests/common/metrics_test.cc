#include "common/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "common/metrics_exposition.h"
#include "common/metrics_process.h"

namespace dino {
namespace metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsExpositionTest, FormatsValuesAsPrometheusParsesThem) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(1), "1");
  EXPECT_EQ(FormatValue(-2.5), "-2.5");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.0001), "0.0001");
  EXPECT_EQ(FormatValue(0.00001), "1e-05");
  EXPECT_EQ(FormatValue(123456), "123456");
  EXPECT_EQ(FormatValue(1e6), "1e+06");
  EXPECT_EQ(FormatValue(1234567), "1.234567e+06");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(std::stod(FormatValue(1.0 / 3.0)), 1.0 / 3.0);
}

TEST(MetricsExpositionTest, EscapesHelpAndLabelValues) {
  EXPECT_EQ(EscapeHelp("a\\b\nc\"d"), "a\\\\b\\nc\"d");
  EXPECT_EQ(EscapeLabelValue("a\\b\nc\"d"), "a\\\\b\\nc\\\"d");
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
}

TEST(MetricsNamesTest, ValidatesPrometheusNames) {
  EXPECT_TRUE(IsValidMetricName("dino_jobs"));
  EXPECT_TRUE(IsValidMetricName("ns:rule_total"));
  EXPECT_TRUE(IsValidMetricName("_x9"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("dino-jobs"));
  EXPECT_FALSE(IsValidMetricName("dino jobs"));
  EXPECT_TRUE(IsValidLabelName("grpc_code"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));
  EXPECT_FALSE(IsValidLabelName(""));
}

TEST(MetricsRegistryTest, RejectsBadRegistrations) {
  Registry registry;
  EXPECT_EQ(registry.AddGauge("bad-name", "h").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddCounter("dino_events", "h").status().code(),
            absl::StatusCode::kInvalidArgument);  // counters end in _total
  EXPECT_EQ(registry.AddGauge("g1", "h", {"bad-label"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddGauge("g2", "h", {"__reserved"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddGauge("g3", "h", {"job", "job"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h1", "h", {"le"}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h2", "h", {}, {2, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h3", "h", {}, {1, std::numeric_limits<double>::infinity()})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddGauge("g4", "").status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(registry.AddGauge("dino_queue_length", "h").ok());
  absl::Status duplicate = registry.AddCounter("dino_queue_length", "h").status();
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kInvalidArgument);  // _total check comes first
  EXPECT_EQ(registry.AddGauge("dino_queue_length", "h").status().code(),
            absl::StatusCode::kAlreadyExists);
  // Only the one valid family was registered, and no failed one leaked into the output.
  EXPECT_EQ(registry.Render(),
            "# HELP dino_queue_length h\n# TYPE dino_queue_length gauge\ndino_queue_length 0\n");
}

TEST(MetricsRegistryTest, RejectsHistogramSeriesCollisions) {
  Registry registry;
  ASSERT_TRUE(registry.AddHistogram("dino_step_seconds", "h", {}, {1}).ok());
  EXPECT_EQ(registry.AddGauge("dino_step_seconds_count", "h").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddCounter("dino_step_seconds_sum", "h").status().code(),
            absl::StatusCode::kInvalidArgument);  // not _total
  ASSERT_TRUE(registry.AddGauge("dino_wait_bucket", "h").ok());
  EXPECT_EQ(registry.AddHistogram("dino_wait", "h", {}, {1}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(registry.AddGauge("dino_step_seconds_max", "h").ok());
}

TEST(MetricsRegistryTest, RendersEveryTypeExactly) {
  Registry registry;
  Family<Counter>* submissions = *registry.AddCounter("dino_job_submissions_total",
                                                      "Jobs submitted.\nIncludes \\ duplicates.");
  Family<Gauge>* jobs = *registry.AddGauge("dino_jobs", "Jobs by state.", {"state"});
  Family<Histogram>* latency = *registry.AddHistogram(
      "dino_scheduling_latency_seconds", "Queue to assignment.", {"pool"}, {0.1, 1, 10});
  Family<Gauge>* info =
      *registry.AddGauge("dino_worker_assignment_info", "Assignment.", {"job", "rank"});

  submissions->Get()->Increment(3);
  jobs->WithLabels({"RUNNING"})->Set(2);
  jobs->WithLabels({"QUEUED"})->Increment(5);
  jobs->WithLabels({"QUEUED"})->Decrement(1);
  auto gpu = latency->WithLabels({"gpu"});
  for (double v : {0.05, 0.1, 0.5, 3.0, 42.0}) gpu->Observe(v);
  info->WithLabels({"job \"a\\b\"\nx", "0"})->Set(1);

  EXPECT_EQ(registry.Render(),
            "# HELP dino_job_submissions_total Jobs submitted.\\nIncludes \\\\ duplicates.\n"
            "# TYPE dino_job_submissions_total counter\n"
            "dino_job_submissions_total 3\n"
            "# HELP dino_jobs Jobs by state.\n"
            "# TYPE dino_jobs gauge\n"
            "dino_jobs{state=\"QUEUED\"} 4\n"
            "dino_jobs{state=\"RUNNING\"} 2\n"
            "# HELP dino_scheduling_latency_seconds Queue to assignment.\n"
            "# TYPE dino_scheduling_latency_seconds histogram\n"
            "dino_scheduling_latency_seconds_bucket{pool=\"gpu\",le=\"0.1\"} 2\n"
            "dino_scheduling_latency_seconds_bucket{pool=\"gpu\",le=\"1\"} 3\n"
            "dino_scheduling_latency_seconds_bucket{pool=\"gpu\",le=\"10\"} 4\n"
            "dino_scheduling_latency_seconds_bucket{pool=\"gpu\",le=\"+Inf\"} 5\n"
            "dino_scheduling_latency_seconds_sum{pool=\"gpu\"} 45.65\n"
            "dino_scheduling_latency_seconds_count{pool=\"gpu\"} 5\n"
            "# HELP dino_worker_assignment_info Assignment.\n"
            "# TYPE dino_worker_assignment_info gauge\n"
            "dino_worker_assignment_info{job=\"job \\\"a\\\\b\\\"\\nx\",rank=\"0\"} 1\n");
}

TEST(MetricsRegistryTest, UnlabelledHistogramHasOnlyLeLabel) {
  Registry registry;
  Family<Histogram>* family = *registry.AddHistogram("step_seconds", "h", {}, {1});
  family->Get()->Observe(2);
  EXPECT_EQ(registry.Render(),
            "# HELP step_seconds h\n# TYPE step_seconds histogram\n"
            "step_seconds_bucket{le=\"1\"} 0\nstep_seconds_bucket{le=\"+Inf\"} 1\n"
            "step_seconds_sum 2\nstep_seconds_count 1\n");
}

TEST(MetricsHistogramTest, BucketBoundsAreInclusiveAndCumulative) {
  Histogram histogram({1, 2, 4});
  for (double v : {0.0, 1.0, 1.5, 2.0, 4.0, 4.5, -3.0}) histogram.Observe(v);
  histogram.Observe(std::numeric_limits<double>::quiet_NaN());  // dropped
  Histogram::Snapshot snapshot = histogram.Collect();
  EXPECT_THAT(snapshot.cumulative_counts, ::testing::ElementsAre(3, 5, 6, 7));
  EXPECT_DOUBLE_EQ(snapshot.sum, 10.0);
  EXPECT_EQ(snapshot.count, 7u);
}

TEST(MetricsHistogramTest, BucketHelpers) {
  EXPECT_THAT(ExponentialBuckets(1, 2, 4), ::testing::ElementsAre(1, 2, 4, 8));
  EXPECT_THAT(LinearBuckets(0.5, 0.5, 3), ::testing::ElementsAre(0.5, 1.0, 1.5));
  std::vector<double> latency = DefaultLatencyBuckets();
  EXPECT_TRUE(std::is_sorted(latency.begin(), latency.end()));
  EXPECT_EQ(latency.front(), 0.001);
}

TEST(MetricsCounterTest, IgnoresNegativeAndNaNIncrements) {
  Counter counter;
  counter.Increment();
  counter.Increment(2.5);
  counter.Increment(-10);
  counter.Increment(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(counter.Value(), 3.5);
}

TEST(MetricsFamilyTest, RemovesChildrenByValuesAndByLabel) {
  Registry registry;
  Family<Gauge>* loss = *registry.AddGauge("dino_train_loss", "Loss.", {"job", "rank"});
  loss->WithLabels({"j1", "0"})->Set(1);
  loss->WithLabels({"j1", "1"})->Set(2);
  std::shared_ptr<Gauge> kept = loss->WithLabels({"j2", "0"});
  kept->Set(3);
  EXPECT_EQ(loss->ChildCount(), 3u);

  EXPECT_EQ(loss->RemoveMatching("job", "j1"), 2u);
  EXPECT_EQ(loss->RemoveMatching("no_such_label", "j2"), 0u);
  EXPECT_EQ(registry.Render(),
            "# HELP dino_train_loss Loss.\n# TYPE dino_train_loss gauge\n"
            "dino_train_loss{job=\"j2\",rank=\"0\"} 3\n");

  EXPECT_TRUE(loss->Remove({"j2", "0"}));
  EXPECT_FALSE(loss->Remove({"j2", "0"}));
  kept->Set(4);  // a held child stays usable but is no longer exported
  EXPECT_EQ(registry.Render(), "# HELP dino_train_loss Loss.\n# TYPE dino_train_loss gauge\n");

  // A later job with the same id starts from a fresh series.
  EXPECT_EQ(loss->WithLabels({"j2", "0"})->Value(), 0.0);
}

TEST(MetricsRegistryTest, RemovesAJobsSeriesFromEveryFamily) {
  Registry registry;
  Family<Gauge>* loss = *registry.AddGauge("dino_train_loss", "h", {"job", "rank"});
  Family<Counter>* images = *registry.AddCounter("dino_train_images_total", "h", {"rank", "job"});
  Family<Histogram>* step = *registry.AddHistogram("dino_train_step_seconds", "h", {"job"}, {1});
  Family<Gauge>* workers = *registry.AddGauge("dino_workers", "h", {"state"});
  loss->WithLabels({"j1", "0"})->Set(1);
  loss->WithLabels({"j2", "0"})->Set(1);
  images->WithLabels({"0", "j1"})->Increment();
  images->WithLabels({"1", "j1"})->Increment();
  step->WithLabels({"j1"})->Observe(0.5);
  workers->WithLabels({"j1"})->Set(1);  // a different label that happens to hold "j1"
  EXPECT_EQ(registry.RemoveMatching("job", "j1"), 4u);
  EXPECT_EQ(loss->ChildCount(), 1u);
  EXPECT_EQ(images->ChildCount(), 0u);
  EXPECT_EQ(step->ChildCount(), 0u);
  EXPECT_EQ(workers->ChildCount(), 1u);
  const std::string text = registry.Render();
  EXPECT_EQ(text.find("job=\"j1\""), std::string::npos);
  EXPECT_THAT(text, HasSubstr("dino_workers{state=\"j1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dino_train_loss{job=\"j2\",rank=\"0\"} 1\n"));
}

TEST(MetricsFamilyTest, WrongLabelCountGivesDetachedChild) {
  Registry registry;
  Family<Counter>* family = *registry.AddCounter("dino_heartbeats_total", "h", {"worker"});
  std::shared_ptr<Counter> detached = family->WithLabels({"w1", "extra"});
  ASSERT_NE(detached, nullptr);
  detached->Increment();
  EXPECT_EQ(family->ChildCount(), 0u);
  EXPECT_EQ(registry.Render().find("dino_heartbeats_total{"), std::string::npos);
}

TEST(MetricsRegistryTest, CallbackGaugesAndHooksRunAtScrape) {
  Registry registry;
  double value = 1.5;
  ASSERT_TRUE(registry.AddCallbackGauge("dino_callback", "h", [&value] { return value; }).ok());
  Family<Gauge>* gpu = *registry.AddGauge("dino_gpu_memory_allocated_bytes", "h", {"device"});
  int hook_runs = 0;
  registry.AddScrapeHook([&] { gpu->WithLabels({"cuda:0"})->Set(++hook_runs * 100); });
  EXPECT_THAT(registry.Render(), HasSubstr("dino_callback 1.5\n"));
  value = 7;
  std::string second = registry.Render();
  EXPECT_THAT(second, HasSubstr("dino_callback 7\n"));
  EXPECT_THAT(second, HasSubstr("dino_gpu_memory_allocated_bytes{device=\"cuda:0\"} 200\n"));
  EXPECT_EQ(registry.AddCallbackGauge("dino_callback", "h", [] { return 0.0; }).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(MetricsProcessTest, ReportsResidentMemory) {
  absl::StatusOr<int64_t> rss = ProcessResidentMemoryBytes();
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_GT(*rss, 1 << 20);  // a gtest binary is well over 1 MiB resident
  EXPECT_LT(*rss, int64_t{1} << 40);
  Registry registry;
  ASSERT_TRUE(RegisterProcessMetrics(&registry).ok());
  std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE process_resident_memory_bytes gauge\n"));
  EXPECT_EQ(text.find("process_resident_memory_bytes NaN"), std::string::npos);
  EXPECT_EQ(text.find("process_resident_memory_bytes 0\n"), std::string::npos);
}

}  // namespace
}  // namespace metrics
}  // namespace dino
