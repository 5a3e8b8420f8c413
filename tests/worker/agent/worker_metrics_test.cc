// WorkerMetrics: every series of deploy/METRICS.md's worker rows, labelled {job, rank}, removed
// when the assignment ends; and what feeds it: a real TrainingRun's per-step reports (images,
// data wait, all-reduce time through a GradientSync that blocks).
#include "worker/agent/worker_metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_system.h"
#include "worker/agent/spec_convert.h"
#include "worker/dino/collectives.h"

namespace dino::agent {
namespace {

// The value of the sample `series` (name and labels exactly as rendered), or -1 when absent.
double Sample(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return -1;
}

TEST(WorkerMetricsTest, AssignmentSeriesAreExportedAndRemovedAtTheEnd) {
  metrics::Registry registry;
  auto created = WorkerMetrics::Create(&registry, "cpu");
  ASSERT_TRUE(created.ok()) << created.status();
  auto assignment = (*created)->BeginAssignment("job-7", 1);
  run::StepReport r;
  r.step.step = 41;
  r.step.loss = 5.5;
  r.step.lr = 0.001;
  r.step.weight_decay = 0.04;
  r.step.teacher_momentum = 0.996;
  r.step.teacher_temp = 0.04;
  r.step.teacher_entropy = 2.25;
  r.step.batch_mean_entropy = 6.5;
  r.step.kl_teacher_student = 0.75;
  r.step.center_norm = 0.125;
  r.step.seconds = 0.3;
  r.step.allreduce_seconds = 0.05;
  r.images = 16;
  r.data_wait_seconds = 0.25;
  assignment->ObserveStep(r);
  assignment->ObserveStep(r);
  assignment->ObserveUpload(1.5, 1000);

  const std::string out = registry.Render();
  const std::string l = "{job=\"job-7\",rank=\"1\"}";
  EXPECT_EQ(Sample(out, "dino_worker_assignment_info" + l), 1);
  EXPECT_EQ(Sample(out, "dino_train_step" + l), 42);  // Steps completed.
  EXPECT_EQ(Sample(out, "dino_train_images_total" + l), 32);
  EXPECT_EQ(Sample(out, "dino_train_loss" + l), 5.5);
  EXPECT_EQ(Sample(out, "dino_train_lr" + l), 0.001);
  EXPECT_EQ(Sample(out, "dino_train_weight_decay" + l), 0.04);
  EXPECT_EQ(Sample(out, "dino_train_teacher_momentum" + l), 0.996);
  EXPECT_EQ(Sample(out, "dino_train_teacher_temp" + l), 0.04);
  EXPECT_EQ(Sample(out, "dino_train_teacher_entropy" + l), 2.25);
  EXPECT_EQ(Sample(out, "dino_train_batch_mean_entropy" + l), 6.5);
  EXPECT_EQ(Sample(out, "dino_train_kl_teacher_student" + l), 0.75);
  EXPECT_EQ(Sample(out, "dino_train_center_norm" + l), 0.125);
  EXPECT_EQ(Sample(out, "dino_train_data_wait_seconds_total" + l), 0.5);
  EXPECT_EQ(Sample(out, "dino_train_allreduce_seconds_total" + l), 0.1);
  EXPECT_EQ(Sample(out, "dino_train_step_seconds_count" + l), 2);
  EXPECT_DOUBLE_EQ(Sample(out, "dino_train_step_seconds_sum" + l), 0.6);
  EXPECT_EQ(Sample(out, "dino_train_step_seconds_bucket{job=\"job-7\",rank=\"1\",le=\"0.16\"}"), 0);
  EXPECT_EQ(Sample(out, "dino_train_step_seconds_bucket{job=\"job-7\",rank=\"1\",le=\"0.32\"}"), 2);
  EXPECT_EQ(Sample(out, "dino_checkpoint_upload_seconds_count" + l), 1);
  EXPECT_EQ(Sample(out, "dino_checkpoint_upload_seconds_sum" + l), 1.5);
  EXPECT_EQ(Sample(out, "dino_checkpoint_upload_bytes_total" + l), 1000);
  // CPU: the GPU families are declared, without series.
  EXPECT_TRUE(absl::StrContains(out, "# TYPE dino_gpu_memory_allocated_bytes gauge\n"));
  EXPECT_FALSE(absl::StrContains(out, "dino_gpu_memory_allocated_bytes{"));

  assignment->End();
  const std::string after = registry.Render();
  EXPECT_FALSE(absl::StrContains(after, "job-7")) << after;
  assignment->ObserveStep(r);  // A late update after the end is harmless and not exported.
  assignment->End();
  EXPECT_FALSE(absl::StrContains(registry.Render(), "job-7"));

  // The next assignment starts from zero.
  auto next = (*created)->BeginAssignment("job-8", 0);
  EXPECT_EQ(Sample(registry.Render(), "dino_train_images_total{job=\"job-8\",rank=\"0\"}"), 0);
}

TEST(WorkerMetricsTest, SecondCreateOnOneRegistryFails) {
  metrics::Registry registry;
  ASSERT_TRUE(WorkerMetrics::Create(&registry, "cpu").ok());
  EXPECT_EQ(WorkerMetrics::Create(&registry, "cpu").status().code(),
            absl::StatusCode::kAlreadyExists);
}

// A one-rank gradient sync whose all-reduce takes at least 20 ms.
class SlowSync final : public GradientSync {
 public:
  absl::Status Attach(const std::vector<torch::Tensor>&) override { return absl::OkStatus(); }
  void BeginStep() override {}
  absl::Status FinishStep() override {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return absl::OkStatus();
  }
};

dino::v1::JobSpec TinySpec() {
  dino::v1::JobSpec spec;
  auto* m = spec.mutable_model();
  m->set_preset("custom");
  m->set_dim(16);
  m->set_depth(1);
  m->set_heads(2);
  m->set_patch_size(4);
  m->set_in_channels(3);
  auto* h = spec.mutable_head();
  h->set_out_dim(64);
  h->set_hidden_dim(32);
  h->set_bottleneck_dim(16);
  auto* d = spec.mutable_data();
  d->set_kind(dino::v1::DATASET_KIND_SYNTHETIC);
  d->set_synthetic_images(24);
  d->set_synthetic_classes(2);
  d->set_synthetic_image_size(16);
  d->set_loader_threads(1);
  auto* a = spec.mutable_augmentation();
  a->set_global_crop_size(16);
  a->set_local_crop_size(8);
  a->set_n_local_crops(2);
  spec.mutable_optim()->set_epochs(1);
  spec.mutable_optim()->set_batch_size_per_rank(8);
  spec.mutable_optim()->set_warmup_epochs(1);
  spec.mutable_dino()->set_warmup_teacher_temp_epochs(1);
  spec.mutable_resources()->set_world_size(1);
  spec.set_progress_every_steps(2);
  return spec;
}

TEST(WorkerMetricsTest, TrainingRunReportsEveryStepIntoTheMetrics) {
  LocalResources local;
  local.threads = 1;
  local.work_dir = absl::StrCat(::testing::TempDir(), "/worker_metrics_run_", getpid());
  absl::StatusOr<run::RunOptions> options = RunOptionsFromSpec(TinySpec(), local);
  ASSERT_TRUE(options.ok()) << options.status();
  LocalCollectives collectives;
  SlowSync sync;
  auto training = run::TrainingRun::Create(*options, &collectives, &sync, DefaultFileSystem());
  ASSERT_TRUE(training.ok()) << training.status();

  metrics::Registry registry;
  auto worker_metrics = WorkerMetrics::Create(&registry, "cpu");
  ASSERT_TRUE(worker_metrics.ok());
  auto assignment = (*worker_metrics)->BeginAssignment("job-1", 0);
  std::vector<run::StepReport> reports;
  run::RunCallbacks callbacks;
  callbacks.on_step = [&](const run::StepReport& r) {
    reports.push_back(r);
    assignment->ObserveStep(r);
  };
  absl::StatusOr<run::RunResult> result = (*training)->Run(callbacks);
  ASSERT_TRUE(result.ok()) << result.status();

  ASSERT_EQ(static_cast<int64_t>(reports.size()), result->steps);  // 24 images / 8 = 3 steps.
  ASSERT_EQ(reports.size(), 3u);
  for (size_t i = 0; i < reports.size(); ++i) {
    EXPECT_EQ(reports[i].step.step, static_cast<int64_t>(i));
    EXPECT_EQ(reports[i].images, 8);
    EXPECT_GE(reports[i].data_wait_seconds, 0);
    EXPECT_GE(reports[i].step.allreduce_seconds, 0.02);  // Includes SlowSync's wait.
    EXPECT_GE(reports[i].step.seconds, reports[i].step.allreduce_seconds);
  }
  const std::string out = registry.Render();
  const std::string l = "{job=\"job-1\",rank=\"0\"}";
  EXPECT_EQ(Sample(out, "dino_train_images_total" + l), 24);
  EXPECT_EQ(Sample(out, "dino_train_step" + l), 3);
  EXPECT_EQ(Sample(out, "dino_train_step_seconds_count" + l), 3);
  EXPECT_GE(Sample(out, "dino_train_allreduce_seconds_total" + l), 0.06);
  EXPECT_EQ(Sample(out, "dino_train_loss" + l), reports.back().step.loss);
}

}  // namespace
}  // namespace dino::agent
