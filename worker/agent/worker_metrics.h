// WorkerMetrics: the worker's Prometheus series, as named in deploy/METRICS.md: per-step training
// statistics and timings, checkpoint uploads, the current assignment as an info gauge, and CUDA
// memory when the worker runs on a GPU (process RSS is metrics::RegisterProcessMetrics).
//
// Series of an assignment carry the labels {job, rank}. A job id is a bounded label only while the
// job runs here, so Assignment::End removes every series labelled with the job (the runner calls
// it when the attempt ends, before the next assignment can start).
//
// Usage (dino-worker): one WorkerMetrics per process, created over the process's Registry; each
// AttemptRunner calls BeginAssignment, feeds ObserveStep/ObserveUpload, and calls End.
//
// Ownership: the families live in the Registry passed to Create (owned by main), which must
// outlive this object; an Assignment is shared (the runner and the reporter's upload callback
// hold it) and may be updated after End, when its series are no longer exported.
// Thread-safety: everything is safe from any thread.
// Failure: Create returns the Registry's error for a name already registered; updates never fail.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "worker/run/training_run.h"

namespace dino::agent {

class WorkerMetrics {
 public:
  // `device` is the worker's device ("cpu", "cuda:N"): CUDA memory gauges for it are refreshed at
  // every scrape in a CUDA build (DINO_WITH_CUDA); elsewhere they are declared but have no series.
  static absl::StatusOr<std::unique_ptr<WorkerMetrics>> Create(metrics::Registry* registry,
                                                               const std::string& device);

  class Assignment {
   public:
    // One training step of this rank.
    void ObserveStep(const run::StepReport& report);
    // One checkpoint upload the coordinator accepted: its wall time (retries included), its size.
    void ObserveUpload(double seconds, int64_t bytes);
    // Stops exporting every series of the job. Idempotent.
    void End();

   private:
    friend class WorkerMetrics;
    Assignment() = default;

    metrics::Registry* registry_ = nullptr;
    std::string job_;
    std::shared_ptr<metrics::Histogram> step_seconds_;
    std::shared_ptr<metrics::Counter> images_;
    std::shared_ptr<metrics::Gauge> step_, loss_, lr_, weight_decay_, teacher_momentum_,
        teacher_temp_, teacher_entropy_, batch_mean_entropy_, kl_, center_norm_;
    std::shared_ptr<metrics::Counter> data_wait_seconds_;
    std::shared_ptr<metrics::Counter> allreduce_seconds_;
    std::shared_ptr<metrics::Histogram> upload_seconds_;
    std::shared_ptr<metrics::Counter> upload_bytes_;
    std::shared_ptr<metrics::Gauge> info_;
  };

  // Starts exporting the series of (job, rank), with the info gauge at 1.
  std::shared_ptr<Assignment> BeginAssignment(const std::string& job, int rank);

 private:
  WorkerMetrics() = default;

  metrics::Registry* registry_ = nullptr;
  metrics::Family<metrics::Histogram>* step_seconds_ = nullptr;
  metrics::Family<metrics::Counter>* images_ = nullptr;
  metrics::Family<metrics::Gauge>* step_ = nullptr;
  metrics::Family<metrics::Gauge>* loss_ = nullptr;
  metrics::Family<metrics::Gauge>* lr_ = nullptr;
  metrics::Family<metrics::Gauge>* weight_decay_ = nullptr;
  metrics::Family<metrics::Gauge>* teacher_momentum_ = nullptr;
  metrics::Family<metrics::Gauge>* teacher_temp_ = nullptr;
  metrics::Family<metrics::Gauge>* teacher_entropy_ = nullptr;
  metrics::Family<metrics::Gauge>* batch_mean_entropy_ = nullptr;
  metrics::Family<metrics::Gauge>* kl_ = nullptr;
  metrics::Family<metrics::Gauge>* center_norm_ = nullptr;
  metrics::Family<metrics::Counter>* data_wait_seconds_ = nullptr;
  metrics::Family<metrics::Counter>* allreduce_seconds_ = nullptr;
  metrics::Family<metrics::Histogram>* upload_seconds_ = nullptr;
  metrics::Family<metrics::Counter>* upload_bytes_ = nullptr;
  metrics::Family<metrics::Gauge>* info_ = nullptr;
  metrics::Family<metrics::Gauge>* gpu_allocated_ = nullptr;  // {device}
  metrics::Family<metrics::Gauge>* gpu_reserved_ = nullptr;   // {device}
};

}  // namespace dino::agent
