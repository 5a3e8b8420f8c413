#include "worker/agent/worker_metrics.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

#if defined(DINO_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

namespace dino::agent {
namespace {

// Step times run from milliseconds (tiny CPU models) to tens of seconds (ViT-B on CPU).
std::vector<double> StepBuckets() { return metrics::ExponentialBuckets(0.005, 2, 14); }
// Uploads of 1 MiB chunks: from a few milliseconds to minutes for multi-GB checkpoints.
std::vector<double> UploadBuckets() { return metrics::ExponentialBuckets(0.01, 2.5, 12); }

#if defined(DINO_WITH_CUDA)
// Refreshes the CUDA memory gauges of `device` ("cuda:N") from LibTorch's caching allocator.
void ReadCudaMemory(const std::string& device, metrics::Family<metrics::Gauge>* allocated,
                    metrics::Family<metrics::Gauge>* reserved) {
  int index = 0;
  if (absl::StartsWith(device, "cuda:")) index = std::atoi(device.c_str() + 5);
  if (!torch::cuda::is_available() || index >= static_cast<int>(torch::cuda::device_count())) {
    return;
  }
  try {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    // Index 0 is the aggregate over small and large pools (StatType::AGGREGATE).
    allocated->WithLabels({device})->Set(static_cast<double>(stats.allocated_bytes[0].current));
    reserved->WithLabels({device})->Set(static_cast<double>(stats.reserved_bytes[0].current));
  } catch (const std::exception&) {
    // A scrape never fails the worker; the gauges keep their last value.
  }
}
#endif

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerMetrics>> WorkerMetrics::Create(metrics::Registry* registry,
                                                                     const std::string& device) {
  auto m = std::unique_ptr<WorkerMetrics>(new WorkerMetrics());
  m->registry_ = registry;
  const std::vector<std::string> labels = {"job", "rank"};
  DINO_ASSIGN_OR_RETURN(m->step_seconds_, registry->AddHistogram("dino_train_step_seconds",
                                                                 "Wall time of one training step.",
                                                                 labels, StepBuckets()));
  DINO_ASSIGN_OR_RETURN(
      m->images_,
      registry->AddCounter("dino_train_images_total",
                           "Images (global crops' source images) processed by this rank.", labels));
  struct GaugeDef {
    metrics::Family<metrics::Gauge>** family;
    const char* name;
    const char* help;
  };
  const GaugeDef gauges[] = {
      {&m->step_, "dino_train_step", "Optimizer steps completed."},
      {&m->loss_, "dino_train_loss", "DINO loss of the last step."},
      {&m->lr_, "dino_train_lr", "Learning rate of the last step."},
      {&m->weight_decay_, "dino_train_weight_decay", "Weight decay of the last step."},
      {&m->teacher_momentum_, "dino_train_teacher_momentum", "EMA momentum of the teacher."},
      {&m->teacher_temp_, "dino_train_teacher_temp", "Teacher softmax temperature."},
      {&m->teacher_entropy_, "dino_train_teacher_entropy",
       "Mean entropy of the teacher's output distributions (nats)."},
      {&m->batch_mean_entropy_, "dino_train_batch_mean_entropy",
       "Entropy of the batch-mean teacher distribution (nats)."},
      {&m->kl_, "dino_train_kl_teacher_student", "KL(teacher||student) of the last step (nats)."},
      {&m->center_norm_, "dino_train_center_norm", "L2 norm of the teacher centre."},
  };
  for (const GaugeDef& g : gauges) {
    DINO_ASSIGN_OR_RETURN(*g.family, registry->AddGauge(g.name, g.help, labels));
  }
  DINO_ASSIGN_OR_RETURN(m->data_wait_seconds_,
                        registry->AddCounter("dino_train_data_wait_seconds_total",
                                             "Time the training loop waited for batches.", labels));
  DINO_ASSIGN_OR_RETURN(
      m->allreduce_seconds_,
      registry->AddCounter("dino_train_allreduce_seconds_total",
                           "Time a step was blocked in gradient and centre all-reduces.", labels));
  DINO_ASSIGN_OR_RETURN(m->upload_seconds_,
                        registry->AddHistogram("dino_checkpoint_upload_seconds",
                                               "Time to upload one checkpoint to the coordinator.",
                                               labels, UploadBuckets()));
  DINO_ASSIGN_OR_RETURN(m->upload_bytes_,
                        registry->AddCounter("dino_checkpoint_upload_bytes_total",
                                             "Checkpoint bytes uploaded.", labels));
  DINO_ASSIGN_OR_RETURN(
      m->info_,
      registry->AddGauge("dino_worker_assignment_info",
                         "1 for the worker's current assignment; removed when it ends.", labels));
  DINO_ASSIGN_OR_RETURN(
      m->gpu_allocated_,
      registry->AddGauge("dino_gpu_memory_allocated_bytes",
                         "CUDA memory allocated by LibTorch (CUDA only).", {"device"}));
  DINO_ASSIGN_OR_RETURN(
      m->gpu_reserved_,
      registry->AddGauge("dino_gpu_memory_reserved_bytes",
                         "CUDA memory reserved by LibTorch's caching allocator (CUDA only).",
                         {"device"}));
#if defined(DINO_WITH_CUDA)
  if (absl::StartsWith(device, "cuda")) {
    const std::string name = device == "cuda" ? "cuda:0" : device;
    auto* allocated = m->gpu_allocated_;
    auto* reserved = m->gpu_reserved_;
    registry->AddScrapeHook(
        [name, allocated, reserved] { ReadCudaMemory(name, allocated, reserved); });
  }
#else
  (void)device;
#endif
  return m;
}

std::shared_ptr<WorkerMetrics::Assignment> WorkerMetrics::BeginAssignment(const std::string& job,
                                                                          int rank) {
  const metrics::LabelValues labels = {job, absl::StrCat(rank)};
  auto a = std::shared_ptr<Assignment>(new Assignment());
  a->registry_ = registry_;
  a->job_ = job;
  a->step_seconds_ = step_seconds_->WithLabels(labels);
  a->images_ = images_->WithLabels(labels);
  a->step_ = step_->WithLabels(labels);
  a->loss_ = loss_->WithLabels(labels);
  a->lr_ = lr_->WithLabels(labels);
  a->weight_decay_ = weight_decay_->WithLabels(labels);
  a->teacher_momentum_ = teacher_momentum_->WithLabels(labels);
  a->teacher_temp_ = teacher_temp_->WithLabels(labels);
  a->teacher_entropy_ = teacher_entropy_->WithLabels(labels);
  a->batch_mean_entropy_ = batch_mean_entropy_->WithLabels(labels);
  a->kl_ = kl_->WithLabels(labels);
  a->center_norm_ = center_norm_->WithLabels(labels);
  a->data_wait_seconds_ = data_wait_seconds_->WithLabels(labels);
  a->allreduce_seconds_ = allreduce_seconds_->WithLabels(labels);
  a->upload_seconds_ = upload_seconds_->WithLabels(labels);
  a->upload_bytes_ = upload_bytes_->WithLabels(labels);
  a->info_ = info_->WithLabels(labels);
  a->info_->Set(1);
  return a;
}

void WorkerMetrics::Assignment::ObserveStep(const run::StepReport& report) {
  const StepResult& s = report.step;
  step_seconds_->Observe(s.seconds);
  images_->Increment(static_cast<double>(report.images));
  step_->Set(static_cast<double>(s.step + 1));
  loss_->Set(s.loss);
  lr_->Set(s.lr);
  weight_decay_->Set(s.weight_decay);
  teacher_momentum_->Set(s.teacher_momentum);
  teacher_temp_->Set(s.teacher_temp);
  teacher_entropy_->Set(s.teacher_entropy);
  batch_mean_entropy_->Set(s.batch_mean_entropy);
  kl_->Set(s.kl_teacher_student);
  center_norm_->Set(s.center_norm);
  data_wait_seconds_->Increment(report.data_wait_seconds);
  allreduce_seconds_->Increment(s.allreduce_seconds);
}

void WorkerMetrics::Assignment::ObserveUpload(double seconds, int64_t bytes) {
  upload_seconds_->Observe(seconds);
  upload_bytes_->Increment(static_cast<double>(bytes));
}

void WorkerMetrics::Assignment::End() { registry_->RemoveMatching("job", job_); }

}  // namespace dino::agent
