#include "tests/client/fake_coordinator.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/watch_resume.h"

namespace dino::client::testing {
namespace {

grpc::Status Unavailable(absl::string_view what) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(what));
}

bool IsTerminal(dino::v1::JobState s) {
  return s == dino::v1::JOB_STATE_SUCCEEDED || s == dino::v1::JOB_STATE_FAILED ||
         s == dino::v1::JOB_STATE_CANCELLED;
}

}  // namespace

void FakeJobService::AddJob(const dino::v1::Job& job) {
  absl::MutexLock lock(&mu_);
  jobs_.push_back(job);
}

void FakeJobService::AppendEventLocked(const std::string& job_id, dino::v1::JobEvent event) {
  auto& events = events_[job_id];
  event.set_index(static_cast<int64_t>(events.size()) + 1);
  event.set_job_id(job_id);
  for (auto& job : jobs_) {
    if (job.id() != job_id) continue;
    job.set_last_event_index(event.index());
    if (event.has_state_change()) job.set_state(event.state_change().to_state());
  }
  events.push_back(std::move(event));
}

void FakeJobService::AppendEvent(const std::string& job_id, dino::v1::JobEvent event) {
  absl::MutexLock lock(&mu_);
  AppendEventLocked(job_id, std::move(event));
}

void FakeJobService::AddCheckpoint(const dino::v1::CheckpointInfo& info, const std::string& bytes) {
  absl::MutexLock lock(&mu_);
  checkpoints_[info.job_id()].push_back(info);
  blobs_[info.id()] = bytes;
}

void FakeJobService::SetMetrics(const std::string& job_id,
                                const dino::v1::GetJobMetricsResponse& metrics) {
  absl::MutexLock lock(&mu_);
  metrics_[job_id] = metrics;
}

void FakeJobService::AddWorker(const dino::v1::WorkerInfo& worker) {
  absl::MutexLock lock(&mu_);
  workers_.push_back(worker);
}

void FakeJobService::LoseSubmitResponses(int n) {
  absl::MutexLock lock(&mu_);
  lose_submit_responses_ = n;
}
void FakeJobService::FailNextCalls(int n) {
  absl::MutexLock lock(&mu_);
  fail_next_calls_ = n;
}
void FakeJobService::CorruptDownloads(bool corrupt) {
  absl::MutexLock lock(&mu_);
  corrupt_downloads_ = corrupt;
}
void FakeJobService::BreakNextDownloadAfter(int chunks) {
  absl::MutexLock lock(&mu_);
  break_download_after_ = chunks;
}
void FakeJobService::SetChunkSize(int bytes) {
  absl::MutexLock lock(&mu_);
  chunk_size_ = bytes;
}
void FakeJobService::SetPageSize(int jobs) {
  absl::MutexLock lock(&mu_);
  page_size_ = jobs;
}
void FakeJobService::SetWatchPage(int events) {
  absl::MutexLock lock(&mu_);
  watch_page_ = events;
}

void FakeJobService::SetShuttingDown(bool shutting_down) {
  absl::MutexLock lock(&mu_);
  shutting_down_ = shutting_down;
}
int FakeJobService::submit_calls() const {
  absl::MutexLock lock(&mu_);
  return submit_calls_;
}
int FakeJobService::job_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(jobs_.size());
}
int FakeJobService::watch_calls() const {
  absl::MutexLock lock(&mu_);
  return watch_calls_;
}
std::vector<int64_t> FakeJobService::download_offsets() const {
  absl::MutexLock lock(&mu_);
  return download_offsets_;
}

bool FakeJobService::TakeInjectedFailure() {
  if (fail_next_calls_ <= 0) return false;
  --fail_next_calls_;
  return true;
}

grpc::Status FakeJobService::SubmitJob(grpc::ServerContext*,
                                       const dino::v1::SubmitJobRequest* request,
                                       dino::v1::SubmitJobResponse* response) {
  absl::MutexLock lock(&mu_);
  ++submit_calls_;
  if (TakeInjectedFailure()) return Unavailable("injected");
  const std::string& request_id = request->spec().request_id();
  if (!request_id.empty()) {
    for (const auto& job : jobs_) {
      if (job.spec().request_id() == request_id) {
        *response->mutable_job() = job;
        response->set_created(false);
        return grpc::Status::OK;
      }
    }
  }
  dino::v1::Job job;
  job.set_id(absl::StrCat("job-", jobs_.size() + 1));  // Test-added jobs count too.
  *job.mutable_spec() = request->spec();
  job.set_state(dino::v1::JOB_STATE_QUEUED);
  jobs_.push_back(job);
  dino::v1::JobEvent queued;
  queued.mutable_state_change()->set_to_state(dino::v1::JOB_STATE_QUEUED);
  AppendEventLocked(job.id(), queued);
  if (lose_submit_responses_ > 0) {
    --lose_submit_responses_;
    return Unavailable("the response was lost");
  }
  *response->mutable_job() = jobs_.back();
  response->set_created(true);
  return grpc::Status::OK;
}

grpc::Status FakeJobService::GetJob(grpc::ServerContext*, const dino::v1::GetJobRequest* request,
                                    dino::v1::Job* response) {
  absl::MutexLock lock(&mu_);
  if (TakeInjectedFailure()) return Unavailable("injected");
  for (const auto& job : jobs_) {
    if (job.id() == request->job_id()) {
      *response = job;
      return grpc::Status::OK;
    }
  }
  return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + request->job_id());
}

grpc::Status FakeJobService::ListJobs(grpc::ServerContext*,
                                      const dino::v1::ListJobsRequest* request,
                                      dino::v1::ListJobsResponse* response) {
  absl::MutexLock lock(&mu_);
  if (TakeInjectedFailure()) return Unavailable("injected");
  std::vector<const dino::v1::Job*> matching;
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {  // Newest first.
    bool state_ok = request->states().empty() ||
                    std::find(request->states().begin(), request->states().end(), it->state()) !=
                        request->states().end();
    bool labels_ok = true;
    for (const auto& [k, v] : request->labels()) {
      auto found = it->spec().labels().find(k);
      labels_ok = labels_ok && found != it->spec().labels().end() && found->second == v;
    }
    if (state_ok && labels_ok) matching.push_back(&*it);
  }
  size_t start = 0;
  if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &start)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad page_token");
  }
  size_t end = std::min(matching.size(), start + static_cast<size_t>(page_size_));
  for (size_t i = start; i < end; ++i) *response->add_jobs() = *matching[i];
  if (end < matching.size()) response->set_next_page_token(absl::StrCat(end));
  return grpc::Status::OK;
}

grpc::Status FakeJobService::CancelJob(grpc::ServerContext*,
                                       const dino::v1::CancelJobRequest* request,
                                       dino::v1::Job* response) {
  absl::MutexLock lock(&mu_);
  if (TakeInjectedFailure()) return Unavailable("injected");
  for (auto& job : jobs_) {
    if (job.id() != request->job_id()) continue;
    if (!IsTerminal(job.state())) {
      dino::v1::JobEvent cancelled;
      cancelled.mutable_state_change()->set_from_state(job.state());
      cancelled.mutable_state_change()->set_to_state(dino::v1::JOB_STATE_CANCELLED);
      cancelled.mutable_state_change()->set_message(request->reason());
      AppendEventLocked(job.id(), cancelled);
      job.set_message(request->reason());
    }
    *response = job;
    return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + request->job_id());
}

grpc::Status FakeJobService::WatchJob(grpc::ServerContext* context,
                                      const dino::v1::WatchJobRequest* request,
                                      grpc::ServerWriter<dino::v1::JobEvent>* writer) {
  int64_t next = request->after_index() + 1;
  absl::MutexLock lock(&mu_);
  ++watch_calls_;
  if (events_.find(request->job_id()) == events_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + request->job_id());
  }
  int sent = 0;
  while (true) {
    if (shutting_down_) return Unavailable("the coordinator is shutting down");
    const auto& events = events_[request->job_id()];
    while (next <= static_cast<int64_t>(events.size())) {
      if (watch_page_ >= 0 && sent == watch_page_) {
        context->AddTrailingMetadata(kWatchResumeMetadataKey, "1");
        return Unavailable("more than a page of events to replay");
      }
      dino::v1::JobEvent event = events[next - 1];
      ++next;
      if (request->skip_progress() && event.has_progress()) continue;
      mu_.Unlock();
      bool written = writer->Write(event);
      mu_.Lock();
      if (!written) return grpc::Status::CANCELLED;
      ++sent;
      if (event.has_state_change() && IsTerminal(event.state_change().to_state())) {
        return grpc::Status::OK;
      }
    }
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    size_t seen = events.size();
    auto changed = [this, &request, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutting_down_ || events_[request->job_id()].size() != seen;
    };
    mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(20));
  }
}

grpc::Status FakeJobService::ListCheckpoints(grpc::ServerContext*,
                                             const dino::v1::ListCheckpointsRequest* request,
                                             dino::v1::ListCheckpointsResponse* response) {
  absl::MutexLock lock(&mu_);
  if (TakeInjectedFailure()) return Unavailable("injected");
  for (const auto& c : checkpoints_[request->job_id()]) *response->add_checkpoints() = c;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::DownloadCheckpoint(
    grpc::ServerContext*, const dino::v1::DownloadCheckpointRequest* request,
    grpc::ServerWriter<dino::v1::DownloadCheckpointResponse>* writer) {
  dino::v1::CheckpointInfo info;
  std::string blob;
  bool corrupt;
  int break_after;
  int chunk_size;
  {
    absl::MutexLock lock(&mu_);
    download_offsets_.push_back(request->offset());
    const auto& list = checkpoints_[request->job_id()];
    const dino::v1::CheckpointInfo* found = nullptr;
    for (const auto& c : list) {
      if (c.id() == request->checkpoint_id()) found = &c;
    }
    if ((request->checkpoint_id().empty() || request->checkpoint_id() == "latest") &&
        !list.empty()) {
      found = &list.back();
    }
    if (request->checkpoint_id() == "best") {  // Highest k-NN top-1, as the coordinator.
      for (const auto& c : list) {
        if (c.has_knn_top1() && (found == nullptr || c.knn_top1() > found->knn_top1())) found = &c;
      }
      if (found == nullptr && !list.empty()) found = &list.back();
    }
    if (found == nullptr) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no checkpoint " + request->checkpoint_id());
    }
    info = *found;
    blob = blobs_[info.id()];
    corrupt = corrupt_downloads_;
    break_after = break_download_after_;
    break_download_after_ = -1;
    chunk_size = chunk_size_;
  }
  if (corrupt && !blob.empty()) blob[blob.size() / 2] ^= 0x5a;
  int64_t offset = request->offset();
  int sent = 0;
  bool first = true;
  do {
    if (break_after >= 0 && sent == break_after) return Unavailable("the coordinator restarted");
    dino::v1::DownloadCheckpointResponse chunk;
    if (first) *chunk.mutable_info() = info;
    first = false;
    chunk.set_offset(offset);
    size_t n = std::min<size_t>(chunk_size, blob.size() - std::min<size_t>(offset, blob.size()));
    chunk.set_data(blob.substr(offset, n));
    offset += static_cast<int64_t>(n);
    if (!writer->Write(chunk)) return grpc::Status::CANCELLED;
    ++sent;
  } while (offset < static_cast<int64_t>(blob.size()));
  return grpc::Status::OK;
}

grpc::Status FakeJobService::GetJobMetrics(grpc::ServerContext*,
                                           const dino::v1::GetJobMetricsRequest* request,
                                           dino::v1::GetJobMetricsResponse* response) {
  absl::MutexLock lock(&mu_);
  if (TakeInjectedFailure()) return Unavailable("injected");
  auto it = metrics_.find(request->job_id());
  if (it == metrics_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + request->job_id());
  }
  for (const auto& series : it->second.series()) {
    if (request->series().empty() || std::find(request->series().begin(), request->series().end(),
                                               series.name()) != request->series().end()) {
      *response->add_series() = series;
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeJobService::ListWorkers(grpc::ServerContext*,
                                         const dino::v1::ListWorkersRequest* request,
                                         dino::v1::ListWorkersResponse* response) {
  absl::MutexLock lock(&mu_);
  if (TakeInjectedFailure()) return Unavailable("injected");
  for (const auto& w : workers_) {
    if (request->include_dead() || w.state() != dino::v1::WORKER_STATE_DEAD) {
      *response->add_workers() = w;
    }
  }
  return grpc::Status::OK;
}

FakeCoordinator::FakeCoordinator() = default;
FakeCoordinator::~FakeCoordinator() { Stop(); }

void FakeCoordinator::Start() {
  service_.SetShuttingDown(false);
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", port_), grpc::InsecureServerCredentials(),
                           &bound);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  ASSERT_NE(server_, nullptr);
  ASSERT_GT(bound, 0);
  port_ = bound;
}

void FakeCoordinator::Stop() {
  if (server_ == nullptr) return;
  service_.SetShuttingDown(true);
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  server_.reset();
}

std::string FakeCoordinator::address() const { return absl::StrCat("127.0.0.1:", port_); }

}  // namespace dino::client::testing
