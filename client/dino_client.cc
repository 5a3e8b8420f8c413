#include "client/dino_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/backoff.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/watch_resume.h"

namespace dino::client {
namespace {

constexpr int kMaxMessageBytes = 16 * 1024 * 1024;

}  // namespace

std::string GenerateRequestId() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          static_cast<uint64_t>(absl::GetCurrentTimeNanos()));
  return absl::StrCat("req-", absl::Hex(rng(), absl::kZeroPad16),
                      absl::Hex(rng(), absl::kZeroPad16));
}

absl::StatusOr<std::unique_ptr<DinoClient>> DinoClient::Open(const DinoClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  DINO_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                        MakeChannelCredentials(options.tls));
  auto channel = grpc::CreateCustomChannel(options.target, credentials, args);
  return std::make_unique<DinoClient>(std::move(channel), options);
}

std::unique_ptr<DinoClient> DinoClient::Create(const DinoClientOptions& options) {
  absl::StatusOr<std::unique_ptr<DinoClient>> client = Open(options);
  return client.ok() ? std::move(*client) : nullptr;
}

void DinoClient::Authorize(grpc::ClientContext* context) const {
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
}

DinoClient::DinoClient(std::shared_ptr<grpc::Channel> channel, const DinoClientOptions& options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : RealClock::Get()),
      channel_(std::move(channel)),
      stub_(dino::v1::JobService::NewStub(channel_)) {}

void DinoClient::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(options_.timeout));
}

absl::Status DinoClient::CallWithRetry(
    const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  grpc::Status status;
  Backoff backoff(options_.backoff);
  for (int attempt = 0; attempt < std::max(1, options_.max_attempts); ++attempt) {
    if (attempt > 0) clock_->SleepFor(backoff.Next());
    grpc::ClientContext context;
    SetDeadline(&context);
    Authorize(&context);
    status = call(&context);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  return FromGrpcStatus(status);
}

absl::StatusOr<dino::v1::SubmitJobResponse> DinoClient::SubmitJob(dino::v1::JobSpec spec) {
  if (spec.request_id().empty()) spec.set_request_id(GenerateRequestId());
  dino::v1::SubmitJobRequest request;
  *request.mutable_spec() = std::move(spec);
  dino::v1::SubmitJobResponse response;
  DINO_RETURN_IF_ERROR(CallWithRetry([&](grpc::ClientContext* context) {
    response.Clear();
    return stub_->SubmitJob(context, request, &response);
  }));
  return response;
}

absl::StatusOr<dino::v1::Job> DinoClient::GetJob(const std::string& job_id) {
  dino::v1::GetJobRequest request;
  request.set_job_id(job_id);
  dino::v1::Job job;
  DINO_RETURN_IF_ERROR(CallWithRetry([&](grpc::ClientContext* context) {
    job.Clear();
    return stub_->GetJob(context, request, &job);
  }));
  return job;
}

absl::StatusOr<std::vector<dino::v1::Job>> DinoClient::ListJobs(dino::v1::ListJobsRequest request) {
  std::vector<dino::v1::Job> jobs;
  while (true) {
    dino::v1::ListJobsResponse response;
    DINO_RETURN_IF_ERROR(CallWithRetry([&](grpc::ClientContext* context) {
      response.Clear();
      return stub_->ListJobs(context, request, &response);
    }));
    for (auto& job : *response.mutable_jobs()) jobs.push_back(std::move(job));
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return jobs;
}

absl::StatusOr<dino::v1::Job> DinoClient::CancelJob(const std::string& job_id,
                                                    const std::string& reason) {
  dino::v1::CancelJobRequest request;
  request.set_job_id(job_id);
  request.set_reason(reason);
  dino::v1::Job job;
  DINO_RETURN_IF_ERROR(CallWithRetry([&](grpc::ClientContext* context) {
    job.Clear();
    return stub_->CancelJob(context, request, &job);
  }));
  return job;
}

absl::StatusOr<std::vector<dino::v1::CheckpointInfo>> DinoClient::ListCheckpoints(
    const std::string& job_id) {
  dino::v1::ListCheckpointsRequest request;
  request.set_job_id(job_id);
  dino::v1::ListCheckpointsResponse response;
  DINO_RETURN_IF_ERROR(CallWithRetry([&](grpc::ClientContext* context) {
    response.Clear();
    return stub_->ListCheckpoints(context, request, &response);
  }));
  return std::vector<dino::v1::CheckpointInfo>(response.checkpoints().begin(),
                                               response.checkpoints().end());
}

absl::StatusOr<dino::v1::GetJobMetricsResponse> DinoClient::GetJobMetrics(
    const dino::v1::GetJobMetricsRequest& request) {
  dino::v1::GetJobMetricsResponse response;
  DINO_RETURN_IF_ERROR(CallWithRetry([&](grpc::ClientContext* context) {
    response.Clear();
    return stub_->GetJobMetrics(context, request, &response);
  }));
  return response;
}

absl::StatusOr<std::vector<dino::v1::WorkerInfo>> DinoClient::ListWorkers(bool include_dead) {
  dino::v1::ListWorkersRequest request;
  request.set_include_dead(include_dead);
  dino::v1::ListWorkersResponse response;
  DINO_RETURN_IF_ERROR(CallWithRetry([&](grpc::ClientContext* context) {
    response.Clear();
    return stub_->ListWorkers(context, request, &response);
  }));
  return std::vector<dino::v1::WorkerInfo>(response.workers().begin(), response.workers().end());
}

absl::Status DinoClient::WatchJob(const std::string& job_id, const WatchOptions& watch,
                                  const WatchCallback& on_event,
                                  const ReconnectCallback& on_reconnect) {
  int64_t last_index = watch.after_index;
  bool received_any = false;
  absl::Time last_contact = clock_->Now();
  Backoff backoff(options_.backoff);
  int retry = 0;
  while (true) {
    grpc::ClientContext context;  // No deadline: the stream lasts as long as the job.
    Authorize(&context);
    dino::v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_index(last_index);
    request.set_skip_progress(watch.skip_progress);
    auto reader = stub_->WatchJob(&context, request);
    dino::v1::JobEvent event;
    bool stopped = false;
    int64_t received_now = 0;
    while (reader->Read(&event)) {
      received_any = true;
      ++received_now;
      last_contact = clock_->Now();
      backoff.Reset();
      retry = 0;
      if (event.index() <= last_index) continue;  // Already delivered before a reconnect.
      last_index = event.index();
      if (!on_event(event)) {
        stopped = true;
        context.TryCancel();
        break;
      }
    }
    grpc::Status status = reader->Finish();
    if (stopped || status.ok()) return absl::OkStatus();
    absl::Status error = FromGrpcStatus(status);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return error;
    // A planned end after a page of events (common/watch_resume.h): resume at once, quietly.
    // One that delivered nothing is treated as a failure, so a broken server cannot spin us.
    if (received_now > 0 &&
        context.GetServerTrailingMetadata().count(kWatchResumeMetadataKey) > 0) {
      continue;
    }
    // Never reached: the retries of a unary call. Reached before: the reconnect window.
    if ((!received_any && retry + 1 >= options_.max_attempts) ||
        clock_->Now() - last_contact > options_.reconnect_window) {
      return Annotate(error, absl::StrCat("watch of ", job_id, " gave up after ",
                                          absl::FormatDuration(options_.reconnect_window),
                                          " without the coordinator"));
    }
    if (on_reconnect) on_reconnect(error);
    ++retry;
    clock_->SleepFor(backoff.Next());
  }
}

absl::StatusOr<dino::v1::CheckpointInfo> DinoClient::DownloadCheckpoint(
    const std::string& job_id, const std::string& checkpoint_id, const ChunkSink& sink,
    const ProgressCallback& on_progress, const ReconnectCallback& on_reconnect) {
  dino::Sha256 sha;
  dino::v1::CheckpointInfo info;
  bool have_info = false;
  int64_t received = 0;
  absl::Time last_contact = clock_->Now();
  Backoff backoff(options_.backoff);
  int retry = 0;
  while (true) {
    grpc::ClientContext context;
    Authorize(&context);
    dino::v1::DownloadCheckpointRequest request;
    request.set_job_id(job_id);
    // Once known, pin the id so that a resumed "latest" cannot switch checkpoints midway.
    request.set_checkpoint_id(have_info ? info.id() : checkpoint_id);
    request.set_offset(received);
    auto reader = stub_->DownloadCheckpoint(&context, request);
    dino::v1::DownloadCheckpointResponse chunk;
    absl::Status failure;
    while (failure.ok() && reader->Read(&chunk)) {
      last_contact = clock_->Now();
      backoff.Reset();
      retry = 0;
      if (chunk.has_info()) {
        if (have_info && chunk.info().sha256() != info.sha256()) {
          failure = absl::DataLossError("the checkpoint changed during the download");
          break;
        }
        info = chunk.info();
        have_info = true;
      }
      if (!have_info) {
        failure = absl::DataLossError("the download stream did not start with the checkpoint info");
      } else if (chunk.offset() != received) {
        failure = absl::DataLossError(
            absl::StrCat("chunk at byte ", chunk.offset(), ", expected byte ", received));
      } else if (received + static_cast<int64_t>(chunk.data().size()) > info.size_bytes()) {
        failure = absl::DataLossError(absl::StrCat("the stream is longer than the checkpoint's ",
                                                   info.size_bytes(), " bytes"));
      } else {
        sha.Update(chunk.data());
        failure = sink(chunk.data());
        received += static_cast<int64_t>(chunk.data().size());
        if (on_progress) on_progress(received, info.size_bytes());
      }
    }
    if (!failure.ok()) {
      context.TryCancel();
      reader->Finish();
      return failure;
    }
    grpc::Status status = reader->Finish();
    if (status.ok()) break;
    absl::Status error = FromGrpcStatus(status);
    // Before the first byte, UNAVAILABLE gets the retries of a unary call; once the download is
    // under way, it gets the reconnect window (the coordinator may be restarting).
    bool give_up = status.error_code() != grpc::StatusCode::UNAVAILABLE ||
                   (!have_info && retry + 1 >= options_.max_attempts) ||
                   clock_->Now() - last_contact > options_.reconnect_window;
    if (give_up) return error;
    if (on_reconnect) on_reconnect(error);
    ++retry;
    clock_->SleepFor(backoff.Next());
  }
  if (!have_info) return absl::DataLossError("the download stream was empty");
  if (received != info.size_bytes()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", info.id(), " is ", info.size_bytes(),
                                            " bytes but the stream ended after ", received));
  }
  std::string digest = sha.HexDigest();
  if (digest != info.sha256()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", info.id(), " sha256 mismatch: got ",
                                            digest, ", expected ", info.sha256()));
  }
  return info;
}

}  // namespace dino::client
