#include "server/coordinator_metrics.h"

#include <map>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"

namespace dino::server {
namespace {

// Times writes and tracks checkpoint bytes; reads pass straight through.
class MeteredStore final : public Store {
 public:
  MeteredStore(std::unique_ptr<Store> store, std::shared_ptr<metrics::Histogram> write_seconds,
               std::shared_ptr<metrics::Gauge> checkpoint_bytes, Clock* clock)
      : store_(std::move(store)),
        write_seconds_(std::move(write_seconds)),
        checkpoint_bytes_(std::move(checkpoint_bytes)),
        clock_(clock) {}

  absl::Status LoadCheckpointSizes() {
    DINO_ASSIGN_OR_RETURN(std::vector<StoredCheckpoint> all,
                          store_->ListCheckpoints("", /*include_deleting=*/true));
    absl::MutexLock lock(&mu_);
    for (const StoredCheckpoint& c : all) sizes_[c.info.id()] = c.info.size_bytes();
    PublishLocked();
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> NextSequence(absl::string_view name) override {
    return Timed([&] { return store_->NextSequence(name); });
  }
  absl::Status SaveJob(const dino::v1::Job& job, absl::Span<const dino::v1::JobEvent> events,
                       const JobWrites& also) override {
    DINO_RETURN_IF_ERROR(Timed([&] { return store_->SaveJob(job, events, also); }));
    if (also.checkpoint.has_value()) {
      absl::MutexLock lock(&mu_);
      sizes_[also.checkpoint->info.id()] = also.checkpoint->info.size_bytes();
      PublishLocked();
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<dino::v1::Job>> LoadJobs() override { return store_->LoadJobs(); }
  absl::StatusOr<std::vector<dino::v1::JobEvent>> ListEvents(const std::string& job_id,
                                                             int64_t after_index,
                                                             int64_t limit) override {
    return store_->ListEvents(job_id, after_index, limit);
  }
  absl::Status AppendStats(const std::string& job_id,
                           absl::Span<const dino::v1::StepStats> stats) override {
    return Timed([&] { return store_->AppendStats(job_id, stats); });
  }
  absl::StatusOr<std::vector<dino::v1::StepStats>> ListStats(const std::string& job_id,
                                                             int64_t from_step,
                                                             int64_t to_step) override {
    return store_->ListStats(job_id, from_step, to_step);
  }
  absl::Status InsertCheckpoint(const StoredCheckpoint& checkpoint) override {
    DINO_RETURN_IF_ERROR(Timed([&] { return store_->InsertCheckpoint(checkpoint); }));
    absl::MutexLock lock(&mu_);
    sizes_[checkpoint.info.id()] = checkpoint.info.size_bytes();
    PublishLocked();
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<StoredCheckpoint>> ListCheckpoints(const std::string& job_id,
                                                                bool include_deleting) override {
    return store_->ListCheckpoints(job_id, include_deleting);
  }
  absl::Status MarkCheckpointDeleting(const std::string& checkpoint_id) override {
    return Timed([&] { return store_->MarkCheckpointDeleting(checkpoint_id); });
  }
  absl::Status DeleteCheckpoint(const std::string& checkpoint_id) override {
    DINO_RETURN_IF_ERROR(Timed([&] { return store_->DeleteCheckpoint(checkpoint_id); }));
    absl::MutexLock lock(&mu_);
    sizes_.erase(checkpoint_id);
    PublishLocked();
    return absl::OkStatus();
  }
  absl::Status SaveWorker(const dino::v1::WorkerInfo& worker) override {
    return Timed([&] { return store_->SaveWorker(worker); });
  }
  absl::StatusOr<std::vector<dino::v1::WorkerInfo>> LoadWorkers() override {
    return store_->LoadWorkers();
  }
  absl::StatusOr<int64_t> SchemaVersion() override { return store_->SchemaVersion(); }

 private:
  template <typename F>
  std::invoke_result_t<F> Timed(F&& write) {
    const absl::Time start = clock_->Now();
    auto result = write();
    write_seconds_->Observe(absl::ToDoubleSeconds(clock_->Now() - start));
    return result;
  }

  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int64_t total = 0;
    for (const auto& [id, bytes] : sizes_) total += bytes;
    checkpoint_bytes_->Set(static_cast<double>(total));
  }

  const std::unique_ptr<Store> store_;
  const std::shared_ptr<metrics::Histogram> write_seconds_;
  const std::shared_ptr<metrics::Gauge> checkpoint_bytes_;
  Clock* const clock_;
  absl::Mutex mu_;
  std::map<std::string, int64_t> sizes_ ABSL_GUARDED_BY(mu_);  // checkpoint id -> bytes
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> WithStoreMetrics(std::unique_ptr<Store> store,
                                                        const CoordinatorMetrics& metrics,
                                                        Clock* clock) {
  auto metered = std::make_unique<MeteredStore>(std::move(store), metrics.sqlite_write_seconds,
                                                metrics.checkpoint_bytes, clock);
  DINO_RETURN_IF_ERROR(metered->LoadCheckpointSizes());
  return std::unique_ptr<Store>(std::move(metered));
}

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
  // SQLite commits with synchronous=FULL: an fsync, from ~100 us on tmpfs to ~10 ms on disks.
  DINO_ASSIGN_OR_RETURN(
      auto* sqlite,
      registry->AddHistogram("dino_sqlite_write_seconds", "Latency of SQLite write transactions.",
                             {}, metrics::ExponentialBuckets(0.0001, 2.5, 12)));
  m->sqlite_write_seconds = sqlite->Get();
  DINO_ASSIGN_OR_RETURN(auto* bytes, registry->AddGauge("dino_checkpoint_bytes",
                                                        "Bytes of committed checkpoints on disk."));
  m->checkpoint_bytes = bytes->Get();
  return m;
}

}  // namespace dino::server
