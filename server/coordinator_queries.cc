// Coordinator: read-side queries (jobs, events, metrics series, checkpoints).
#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/coordinator.h"

namespace dino::server {

using dino::v1::Job;
using dino::v1::JobEvent;

namespace {

// Indices of at most `max_points` points spread evenly over n, always keeping the last one.
std::vector<size_t> Downsample(size_t n, int32_t max_points) {
  std::vector<size_t> keep;
  if (max_points <= 0 || n <= static_cast<size_t>(max_points)) {
    for (size_t i = 0; i < n; ++i) keep.push_back(i);
    return keep;
  }
  if (max_points == 1) return {n - 1};
  for (int32_t i = 0; i < max_points; ++i) {
    keep.push_back(static_cast<size_t>(
        (static_cast<double>(i) * static_cast<double>(n - 1)) / (max_points - 1) + 0.5));
  }
  return keep;
}

const char* const kSeriesNames[] = {"loss",
                                    "lr",
                                    "weight_decay",
                                    "teacher_momentum",
                                    "teacher_temp",
                                    "teacher_entropy",
                                    "batch_mean_entropy",
                                    "kl",
                                    "center_norm",
                                    "images_per_second",
                                    "data_wait_fraction",
                                    "epoch",
                                    "knn_top1"};

double SeriesValue(const dino::v1::StepStats& s, const std::string& name) {
  if (name == "loss") return s.loss();
  if (name == "lr") return s.lr();
  if (name == "weight_decay") return s.weight_decay();
  if (name == "teacher_momentum") return s.teacher_momentum();
  if (name == "teacher_temp") return s.teacher_temp();
  if (name == "teacher_entropy") return s.teacher_entropy();
  if (name == "batch_mean_entropy") return s.batch_mean_entropy();
  if (name == "kl") return s.kl();
  if (name == "center_norm") return s.center_norm();
  if (name == "images_per_second") return s.images_per_second();
  if (name == "data_wait_fraction") return s.data_wait_fraction();
  return static_cast<double>(s.epoch());
}

}  // namespace

absl::StatusOr<Job> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  DINO_ASSIGN_OR_RETURN(JobEntry * entry, FindJobLocked(job_id));
  return entry->job;
}

absl::StatusOr<dino::v1::ListJobsResponse> Coordinator::ListJobs(
    const dino::v1::ListJobsRequest& request) {
  int64_t page_size = request.page_size() == 0 ? 50 : request.page_size();
  if (page_size < 0 || page_size > 500) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be in [0, 500], got ", request.page_size()));
  }
  int64_t before_seq = INT64_MAX;
  if (!request.page_token().empty() &&
      (!absl::SimpleAtoi(request.page_token(), &before_seq) || before_seq <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token \"", request.page_token(), "\" is not a token from ListJobs"));
  }
  absl::MutexLock lock(&mu_);
  std::vector<const JobEntry*> matching;
  for (const auto& [id, entry] : jobs_) {
    if (entry.seq >= before_seq) continue;
    if (request.states_size() > 0 && std::find(request.states().begin(), request.states().end(),
                                               entry.job.state()) == request.states().end()) {
      continue;
    }
    bool labels_match = true;
    for (const auto& [key, value] : request.labels()) {
      auto it = entry.job.spec().labels().find(key);
      if (it == entry.job.spec().labels().end() || it->second != value) labels_match = false;
    }
    if (labels_match) matching.push_back(&entry);
  }
  std::sort(matching.begin(), matching.end(),
            [](const JobEntry* a, const JobEntry* b) { return a->seq > b->seq; });
  dino::v1::ListJobsResponse response;
  for (int64_t i = 0; i < static_cast<int64_t>(matching.size()) && i < page_size; ++i) {
    *response.add_jobs() = matching[i]->job;
  }
  if (static_cast<int64_t>(matching.size()) > page_size) {
    response.set_next_page_token(absl::StrCat(matching[page_size - 1]->seq));
  }
  return response;
}

absl::StatusOr<int64_t> Coordinator::Watch(const std::string& job_id, int64_t after_index,
                                           bool skip_progress, EventSink* sink,
                                           int64_t max_backlog) {
  if (after_index < 0) {
    return absl::InvalidArgumentError(absl::StrCat("after_index must be >= 0, got ", after_index));
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
  DINO_ASSIGN_OR_RETURN(JobEntry * entry, FindJobLocked(job_id));
  // The lock is held throughout: no event of the job is committed between the replay and the
  // registration, so the watcher misses none and sees none twice.
  return watches_.Watch(job_id, after_index, skip_progress, sink, max_backlog,
                        IsTerminal(entry->job.state()));
}

void Coordinator::Unwatch(int64_t token) {
  absl::MutexLock lock(&mu_);
  watches_.Remove(token);
}

absl::StatusOr<dino::v1::GetJobMetricsResponse> Coordinator::GetJobMetrics(
    const dino::v1::GetJobMetricsRequest& request) {
  std::vector<std::string> names(request.series().begin(), request.series().end());
  for (const std::string& name : names) {
    if (std::find(std::begin(kSeriesNames), std::end(kSeriesNames), name) ==
        std::end(kSeriesNames)) {
      return absl::InvalidArgumentError(
          absl::StrCat("series \"", name, "\" is not a known series"));
    }
  }
  if (names.empty()) names.assign(std::begin(kSeriesNames), std::end(kSeriesNames));
  if (request.max_points() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_points must be >= 0, got ", request.max_points()));
  }
  {
    absl::MutexLock lock(&mu_);
    DINO_RETURN_IF_ERROR(FindJobLocked(request.job_id()).status());
  }
  const int64_t to_step = request.to_step() > 0 ? request.to_step() : -1;
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::StepStats> stats,
                        store_->ListStats(request.job_id(), request.from_step(), to_step));
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::CheckpointInfo> checkpoints,
                        checkpoints_->List(request.job_id()));
  dino::v1::GetJobMetricsResponse response;
  for (const std::string& name : names) {
    dino::v1::MetricSeries* series = response.add_series();
    series->set_name(name);
    std::vector<dino::v1::MetricPoint> points;
    if (name == "knn_top1") {
      for (const auto& c : checkpoints) {
        if (!c.has_knn_top1() || c.step() < request.from_step() ||
            (to_step >= 0 && c.step() > to_step)) {
          continue;
        }
        dino::v1::MetricPoint point;
        point.set_step(c.step());
        point.set_value(c.knn_top1());
        *point.mutable_time() = c.create_time();
        points.push_back(std::move(point));
      }
    } else {
      for (const auto& s : stats) {
        dino::v1::MetricPoint point;
        point.set_step(s.step());
        point.set_value(SeriesValue(s, name));
        *point.mutable_time() = s.time();
        points.push_back(std::move(point));
      }
    }
    for (size_t i : Downsample(points.size(), request.max_points())) {
      *series->add_points() = points[i];
    }
  }
  return response;
}

absl::StatusOr<std::vector<dino::v1::CheckpointInfo>> Coordinator::ListCheckpoints(
    const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    DINO_RETURN_IF_ERROR(FindJobLocked(job_id).status());
  }
  return checkpoints_->List(job_id);
}

absl::StatusOr<std::pair<dino::v1::CheckpointInfo, std::unique_ptr<BlobReader>>>
Coordinator::OpenCheckpoint(const std::string& job_id, const std::string& which, int64_t offset) {
  {
    absl::MutexLock lock(&mu_);
    DINO_RETURN_IF_ERROR(FindJobLocked(job_id).status());
  }
  DINO_ASSIGN_OR_RETURN(StoredCheckpoint checkpoint, checkpoints_->Resolve(job_id, which));
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader,
                        checkpoints_->OpenBlob(checkpoint, offset));
  return std::make_pair(checkpoint.info, std::move(reader));
}

}  // namespace dino::server
