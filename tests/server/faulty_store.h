// FaultyStore: a Store that forwards to another one and fails chosen writes on demand, to test
// what the coordinator does when its store errs at a given point of a transition.
//
// Ownership: owns the wrapped store. Thread-safety: as the wrapped store; the fault counters are
// locked. Failure: an armed write fails with UNAVAILABLE("injected store fault") and stores nothing.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/store.h"

namespace dino::server::testing {

class FaultyStore final : public Store {
 public:
  explicit FaultyStore(std::unique_ptr<Store> base) : base_(std::move(base)) {}

  // The next `count` calls of SaveJob fail (all of them while count < 0).
  void FailSaveJob(int count) {
    absl::MutexLock lock(&mu_);
    fail_save_job_ = count;
  }
  // The next `count` calls of SaveWorker fail (all of them while count < 0).
  void FailSaveWorker(int count) {
    absl::MutexLock lock(&mu_);
    fail_save_worker_ = count;
  }
  // How many times SaveJob was called (failed ones included).
  int save_job_calls() {
    absl::MutexLock lock(&mu_);
    return save_job_calls_;
  }

  absl::StatusOr<int64_t> NextSequence(absl::string_view name) override {
    return base_->NextSequence(name);
  }
  absl::Status SaveJob(const dino::v1::Job& job, absl::Span<const dino::v1::JobEvent> events,
                       const JobWrites& also) override {
    {
      absl::MutexLock lock(&mu_);
      ++save_job_calls_;
      if (fail_save_job_ != 0) {
        if (fail_save_job_ > 0) --fail_save_job_;
        return absl::UnavailableError("injected store fault");
      }
    }
    return base_->SaveJob(job, events, also);
  }
  absl::StatusOr<std::vector<dino::v1::Job>> LoadJobs() override { return base_->LoadJobs(); }
  absl::StatusOr<std::vector<dino::v1::JobEvent>> ListEvents(const std::string& job_id,
                                                             int64_t after_index,
                                                             int64_t limit) override {
    return base_->ListEvents(job_id, after_index, limit);
  }
  absl::Status AppendStats(const std::string& job_id,
                           absl::Span<const dino::v1::StepStats> stats) override {
    return base_->AppendStats(job_id, stats);
  }
  absl::StatusOr<std::vector<dino::v1::StepStats>> ListStats(const std::string& job_id,
                                                             int64_t from_step,
                                                             int64_t to_step) override {
    return base_->ListStats(job_id, from_step, to_step);
  }
  absl::Status InsertCheckpoint(const StoredCheckpoint& checkpoint) override {
    return base_->InsertCheckpoint(checkpoint);
  }
  absl::StatusOr<std::vector<StoredCheckpoint>> ListCheckpoints(const std::string& job_id,
                                                                bool include_deleting) override {
    return base_->ListCheckpoints(job_id, include_deleting);
  }
  absl::Status MarkCheckpointDeleting(const std::string& checkpoint_id) override {
    return base_->MarkCheckpointDeleting(checkpoint_id);
  }
  absl::Status DeleteCheckpoint(const std::string& checkpoint_id) override {
    return base_->DeleteCheckpoint(checkpoint_id);
  }
  absl::Status SaveWorker(const dino::v1::WorkerInfo& worker) override {
    {
      absl::MutexLock lock(&mu_);
      if (fail_save_worker_ != 0) {
        if (fail_save_worker_ > 0) --fail_save_worker_;
        return absl::UnavailableError("injected store fault");
      }
    }
    return base_->SaveWorker(worker);
  }
  absl::StatusOr<std::vector<dino::v1::WorkerInfo>> LoadWorkers() override {
    return base_->LoadWorkers();
  }
  absl::StatusOr<int64_t> SchemaVersion() override { return base_->SchemaVersion(); }

 private:
  std::unique_ptr<Store> base_;
  absl::Mutex mu_;
  int fail_save_job_ ABSL_GUARDED_BY(mu_) = 0;
  int save_job_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_save_worker_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dino::server::testing
