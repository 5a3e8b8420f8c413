#include "server/job_service.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/proto_utf8.h"
#include "common/status_macros.h"
#include "common/watch_resume.h"
#include "server/bounded_write_reactor.h"
#include "server/unary_reply.h"

namespace dino::server {
namespace {

using dino::v1::JobEvent;

// The caller of a job-level call as the Coordinator sees it: the anonymous admin when auth is off
// (`calls` null), else the authenticated principal (admin only for the admin role).
JobCaller CallerOf(const AuthCalls* calls, const grpc::ServerContextBase* context) {
  JobCaller caller;
  if (calls == nullptr) return caller;
  std::optional<Principal> principal = calls->Caller(context);
  caller.name = principal.has_value() ? principal->name : kAnonymousSubmitter;
  caller.admin = principal.has_value() && principal->role == Role::kAdmin;
  return caller;
}

// SubmitJob's request from its raw bytes. A request protobuf cannot parse is INVALID_ARGUMENT
// naming the string field with invalid UTF-8 when that is the cause, else saying it is malformed.
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, dino::v1::SubmitJobRequest* request) {
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) return absl::InvalidArgumentError("unreadable request");
  std::string wire;
  for (const grpc::Slice& slice : slices) {
    wire.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  if (request->ParseFromString(wire)) return absl::OkStatus();
  DINO_RETURN_IF_ERROR(CheckProtoUtf8(dino::v1::SubmitJobRequest::descriptor(), wire, "request"));
  return absl::InvalidArgumentError("request: not a valid SubmitJobRequest message");
}

// Streams a job's events. Registration happens in the constructor; writes and Finish only start
// once the constructor has stored the watch token (Start), so OnDone (which unregisters and
// deletes) can never run before the token is known. The backlog is replayed at most `max_lag`
// events per stream (Coordinator::Watch), and at most `max_lag` events wait in the queue: the next
// one ends the stream with UNAVAILABLE once the queue is sent. Either way the client resumes after
// the last index it got, from the store; such an end carries `dino-watch-resume` in its trailing
// metadata (common/watch_resume.h). The stream's --max-watch-streams slot is released when it
// finishes, before the client sees its status, so the resumed stream is never refused for it.
class WatchReactor final : public BoundedWriteReactor<grpc::ServerWriteReactor<JobEvent>, JobEvent>,
                           public EventSink {
 public:
  // `limiter` counts this stream against `client` (server/limits.h) until it finishes.
  WatchReactor(grpc::CallbackServerContext* context, Coordinator* coordinator,
               const dino::v1::WatchJobRequest& request, WatchStreamLimiter* limiter,
               std::string client, int64_t max_lag)
      : BoundedWriteReactor(QueueOptions(max_lag)),
        context_(context),
        coordinator_(coordinator),
        limiter_(limiter),
        client_(std::move(client)) {
    absl::Status admitted = limiter->Acquire(client_);
    absl::StatusOr<int64_t> token =
        admitted.ok()
            ? coordinator_->Watch(request.job_id(), request.after_index(), request.skip_progress(),
                                  this, std::max<int64_t>(1, max_lag))
            : absl::StatusOr<int64_t>(admitted);
    if (!admitted.ok()) limiter_ = nullptr;  // Nothing to release.
    if (!token.ok()) {
      EndNow(token.status());
    } else {
      token_ = *token;
    }
    Start();
  }

  void OnEvent(const JobEvent& event) override { Enqueue(event); }
  void OnEnd(const absl::Status& status) override { EndAfterQueued(status); }
  void OnCancel() override { EndNow(absl::CancelledError()); }

 private:
  static Options QueueOptions(int64_t max_lag) {
    Options options;
    options.max_queued = static_cast<size_t>(std::max<int64_t>(1, max_lag));
    options.overflow = WatchResumeError(absl::StrCat(
        "this watcher fell ", options.max_queued,
        " events behind (--max-watch-lag-events); resume with after_index = the last index "
        "received"));
    options.write_failed_message = "the watcher went away";
    options.started = false;
    return options;
  }

  void OnFinishing(const absl::Status& status) override {
    if (IsWatchResume(status)) context_->AddTrailingMetadata(kWatchResumeMetadataKey, "1");
    if (limiter_ != nullptr) limiter_->Release(client_);
    limiter_ = nullptr;
  }

  // Finish ran first (gRPC calls OnDone only after it), and released the slot.
  void OnStreamDone() override {
    if (token_ > 0) coordinator_->Unwatch(token_);
  }

  grpc::CallbackServerContext* const context_;
  Coordinator* const coordinator_;
  // Null when the stream was refused or has released its slot. Written in the constructor before
  // Start() and then only in OnFinishing, which cannot run before Start().
  WatchStreamLimiter* limiter_;
  const std::string client_;
  int64_t token_ = 0;  // Written once in the constructor, before any Finish.
};

// Sends a checkpoint in chunks of kCheckpointChunkBytes, read from disk one at a time and verified
// as they go (see BlobReader); the first carries its info. A corrupt blob ends in DATA_LOSS before
// its last chunk is sent.
class DownloadReactor final
    : public grpc::ServerWriteReactor<dino::v1::DownloadCheckpointResponse> {
 public:
  DownloadReactor(Coordinator* coordinator, const dino::v1::DownloadCheckpointRequest& request) {
    auto checkpoint =
        coordinator->OpenCheckpoint(request.job_id(), request.checkpoint_id(), request.offset());
    if (!checkpoint.ok()) {
      Finish(ToGrpcStatus(checkpoint.status()));
      return;
    }
    *message_.mutable_info() = std::move(checkpoint->first);
    reader_ = std::move(checkpoint->second);
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the downloader went away"));
      return;
    }
    if (reader_->done()) {
      Finish(grpc::Status::OK);
      return;
    }
    message_.Clear();
    Next();
  }

  void OnDone() override { delete this; }

 private:
  void Next() {
    message_.set_offset(reader_->position());
    absl::StatusOr<std::string> chunk = reader_->Next(kCheckpointChunkBytes);
    if (!chunk.ok()) {
      Finish(ToGrpcStatus(chunk.status()));
      return;
    }
    message_.set_data(std::move(*chunk));
    StartWrite(&message_);
  }

  std::unique_ptr<BlobReader> reader_;
  dino::v1::DownloadCheckpointResponse message_;
};

}  // namespace

grpc::ServerWriteReactor<dino::v1::DownloadCheckpointResponse>* NewDownloadReactor(
    Coordinator* coordinator, const dino::v1::DownloadCheckpointRequest& request) {
  return new DownloadReactor(coordinator, request);
}

grpc::ServerUnaryReactor* JobServiceImpl::SubmitJob(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request_bytes,
                                                    grpc::ByteBuffer* response_bytes) {
  dino::v1::SubmitJobRequest request;
  if (absl::Status parsed = ParseRequest(*request_bytes, &request); !parsed.ok()) {
    return Done(context, parsed);
  }
  if (absl::Status allowed = CheckSubmittedSpec(request.spec(), limits_); !allowed.ok()) {
    return Done(context, allowed);
  }
  auto result = coordinator_->SubmitJob(request.spec(), CallerOf(calls_, context));
  if (!result.ok()) return Done(context, result.status());
  bool own_buffer = false;
  grpc::Status serialized = grpc::SerializationTraits<dino::v1::SubmitJobResponse>::Serialize(
      *result, response_bytes, &own_buffer);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(serialized);
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                 const dino::v1::GetJobRequest* request,
                                                 dino::v1::Job* response) {
  auto result = coordinator_->GetJob(request->job_id());
  if (result.ok()) *response = std::move(*result);
  return Done(context, result.status());
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                   const dino::v1::ListJobsRequest* request,
                                                   dino::v1::ListJobsResponse* response) {
  auto result = coordinator_->ListJobs(*request);
  if (result.ok()) *response = std::move(*result);
  return Done(context, result.status());
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                    const dino::v1::CancelJobRequest* request,
                                                    dino::v1::Job* response) {
  // The interceptor already refused a submitter's cancel of a job it could see was not its own;
  // the Coordinator checks again in the same critical section as the cancel, which also covers a
  // job submitted after the interceptor looked.
  auto result =
      coordinator_->CancelJob(request->job_id(), request->reason(), CallerOf(calls_, context));
  if (result.ok()) *response = std::move(*result);
  return Done(context, result.status());
}

grpc::ServerWriteReactor<JobEvent>* JobServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const dino::v1::WatchJobRequest* request) {
  std::string caller;
  if (calls_ != nullptr) {
    std::optional<Principal> principal = calls_->Caller(context);
    if (principal.has_value()) caller = principal->name;
  }
  return new WatchReactor(context, coordinator_, *request, &watch_streams_,
                          ClientKey(context->peer(), caller), limits_.max_watch_lag_events);
}

grpc::ServerUnaryReactor* JobServiceImpl::ListCheckpoints(
    grpc::CallbackServerContext* context, const dino::v1::ListCheckpointsRequest* request,
    dino::v1::ListCheckpointsResponse* response) {
  auto result = coordinator_->ListCheckpoints(request->job_id());
  if (result.ok()) {
    for (auto& checkpoint : *result) *response->add_checkpoints() = std::move(checkpoint);
  }
  return Done(context, result.status());
}

grpc::ServerWriteReactor<dino::v1::DownloadCheckpointResponse>* JobServiceImpl::DownloadCheckpoint(
    grpc::CallbackServerContext* /*context*/, const dino::v1::DownloadCheckpointRequest* request) {
  return NewDownloadReactor(coordinator_, *request);
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJobMetrics(
    grpc::CallbackServerContext* context, const dino::v1::GetJobMetricsRequest* request,
    dino::v1::GetJobMetricsResponse* response) {
  auto result = coordinator_->GetJobMetrics(*request);
  if (result.ok()) *response = std::move(*result);
  return Done(context, result.status());
}

grpc::ServerUnaryReactor* JobServiceImpl::ListWorkers(grpc::CallbackServerContext* context,
                                                      const dino::v1::ListWorkersRequest* request,
                                                      dino::v1::ListWorkersResponse* response) {
  for (auto& worker : coordinator_->ListWorkers(request->include_dead())) {
    *response->add_workers() = std::move(worker);
  }
  return Done(context, absl::OkStatus());
}

}  // namespace dino::server
