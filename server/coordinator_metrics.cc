#include "server/coordinator_metrics.h"

#include "common/status_macros.h"

namespace dino::server {

absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> CoordinatorMetrics::Create(
    metrics::Registry* registry) {
  auto m = std::make_unique<CoordinatorMetrics>();
  DINO_ASSIGN_OR_RETURN(m->jobs, registry->AddGauge("dino_jobs", "Jobs per state.", {"state"}));
  DINO_ASSIGN_OR_RETURN(
      m->workers, registry->AddGauge("dino_workers", "Registered workers per state.", {"state"}));
  DINO_ASSIGN_OR_RETURN(auto* submissions,
                        registry->AddCounter("dino_job_submissions_total",
                                             "Jobs accepted by SubmitJob (deduplicated requests "
                                             "not counted)."));
  m->submissions = submissions->Get();
  DINO_ASSIGN_OR_RETURN(auto* restarts, registry->AddCounter("dino_job_restarts_total",
                                                             "Attempts aborted and re-queued."));
  m->restarts = restarts->Get();
  DINO_ASSIGN_OR_RETURN(auto* cancellations, registry->AddCounter("dino_job_cancellations_total",
                                                                  "Jobs cancelled by a user."));
  m->cancellations = cancellations->Get();
  DINO_ASSIGN_OR_RETURN(
      auto* queue, registry->AddGauge("dino_queue_length", "Jobs waiting for a gang of workers."));
  m->queue_length = queue->Get();
  DINO_ASSIGN_OR_RETURN(
      auto* latency, registry->AddHistogram("dino_scheduling_latency_seconds",
                                            "Time from QUEUED to the assignment of all ranks.", {},
                                            metrics::DefaultLatencyBuckets()));
  m->scheduling_latency = latency->Get();
  DINO_ASSIGN_OR_RETURN(
      auto* heartbeats,
      registry->AddCounter("dino_heartbeats_total", "Heartbeats received from workers."));
  m->heartbeats = heartbeats->Get();
  DINO_ASSIGN_OR_RETURN(auto* stored, registry->AddCounter("dino_checkpoints_stored_total",
                                                           "Checkpoints verified and committed."));
  m->checkpoints_stored = stored->Get();
  DINO_ASSIGN_OR_RETURN(auto* collapse,
                        registry->AddCounter("dino_collapse_warnings_total",
                                             "Collapse warnings raised on progress reports."));
  m->collapse_warnings = collapse->Get();
  return m;
}

}  // namespace dino::server
