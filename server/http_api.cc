#include "server/http_api.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/watch_resume.h"
#include "server/auth_interceptor.h"
#include "server/http_query.h"
#include "server/http_routes.h"

namespace dino::server {

namespace {

constexpr char kJobService[] = "/dino.v1.JobService/";

HttpResponse Json(std::string body, int status = 200) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // '<' and '>' too, so that no JSON body can be read as markup by a confused client.
        if (c < 0x20 || c == '<' || c == '>' || c == '&') {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

HttpResponse QueryError(const HttpQueryError& error) {
  return HttpError(error.status, error.field);
}

// Job and checkpoint ids as the coordinator makes them; anything else cannot name one.
absl::Status CheckId(absl::string_view id, absl::string_view field) {
  const bool ok = !id.empty() && id.size() <= kMaxHttpIdBytes &&
                  std::all_of(id.begin(), id.end(), [](char c) {
                    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                           c == '_' || c == '.';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, " must be 1 to ", kMaxHttpIdBytes, " letters, digits, '-', '_' or '.'"));
}

// "RUNNING", "running" or "JOB_STATE_RUNNING".
bool ParseJobState(absl::string_view text, dino::v1::JobState* state) {
  std::string name = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(name, "JOB_STATE_")) name = "JOB_STATE_" + name;
  return dino::v1::JobState_Parse(name, state) && *state != dino::v1::JOB_STATE_UNSPECIFIED;
}

// Collects the events Watch replays, for the paged (non-streaming) events route.
class EventCollector final : public EventSink {
 public:
  explicit EventCollector(size_t limit) : limit_(limit) {}
  void OnEvent(const dino::v1::JobEvent& event) override {
    absl::MutexLock lock(&mu_);
    if (events_.size() >= limit_) {
      more_ = true;
      return;
    }
    events_.push_back(event);
  }
  void OnEnd(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (IsWatchResume(status)) more_ = true;
  }
  std::string ToJsonBody(int64_t after_index) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> parts;
    int64_t next = after_index;
    for (const dino::v1::JobEvent& event : events_) {
      parts.push_back(ToJson(event));
      next = event.index();
    }
    return absl::StrCat("{\"events\":[", absl::StrJoin(parts, ","), "],\"nextAfterIndex\":\"",
                        next, "\",\"more\":", more_ ? "true" : "false", "}");
  }

 private:
  const size_t limit_;
  absl::Mutex mu_;
  std::vector<dino::v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
  bool more_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

HttpResponse HttpError(const absl::Status& status, absl::string_view field) {
  HttpResponse response;
  response.status = HttpStatusFor(status.code());
  response.body = absl::StrCat("{\"error\":{\"code\":", response.status, ",\"status\":",
                               JsonString(absl::StatusCodeToString(status.code())),
                               ",\"message\":", JsonString(status.message()));
  if (!field.empty()) absl::StrAppend(&response.body, ",\"field\":", JsonString(field));
  response.body += "}}";
  if (response.status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  // Zero values too (state, restarts, progress 0), so a client never guesses at a missing field.
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

HttpApi::HttpApi(Coordinator* coordinator, const TokenTable* tokens)
    : coordinator_(coordinator), tokens_(tokens) {}

HttpResponse HttpApi::Handle(const HttpRequest& request) const {
  std::optional<HttpRoute> route = MatchHttpRoute(request.path);
  if (!route.has_value()) {
    return HttpError(absl::NotFoundError(absl::StrCat("no API route ", request.path.substr(0, 200))));
  }
  if (request.method != route->method) {
    HttpResponse response = HttpError(absl::InvalidArgumentError(
        absl::StrCat(request.path.substr(0, 200), " answers ", route->method, " only")));
    response.status = 405;
    response.headers.emplace_back("Allow", route->method);
    return response;
  }
  std::optional<Principal> caller;
  if (tokens_ != nullptr) {
    auto header = request.headers.find("authorization");
    if (header == request.headers.end()) {
      return HttpError(absl::UnauthenticatedError("missing Authorization: Bearer <token>"));
    }
    absl::string_view value = header->second;
    constexpr absl::string_view kBearer = "bearer ";
    if (value.size() <= kBearer.size() || value.size() > 4096 ||
        !absl::EqualsIgnoreCase(value.substr(0, kBearer.size()), kBearer)) {
      return HttpError(absl::UnauthenticatedError("Authorization must be \"Bearer <token>\""));
    }
    caller = tokens_->Authenticate(absl::StripAsciiWhitespace(value.substr(kBearer.size())));
    if (!caller.has_value()) return HttpError(absl::UnauthenticatedError("unknown token"));
    absl::Status allowed = AuthorizeCall(caller->role, absl::StrCat(kJobService, route->grpc_method));
    if (!allowed.ok()) return HttpError(allowed);
  }
  if (route->kind != RouteKind::kListJobs && route->kind != RouteKind::kWorkers) {
    if (absl::Status ok = CheckId(route->job_id, "job_id"); !ok.ok()) return HttpError(ok, "job_id");
  }
  if (route->kind == RouteKind::kDownload) {
    if (absl::Status ok = CheckId(route->checkpoint_id, "checkpoint_id"); !ok.ok()) {
      return HttpError(ok, "checkpoint_id");
    }
  }
  HttpResponse response = HandleAuthorized(request, *route, caller);
  response.headers.emplace_back("Cache-Control", "no-store");
  return response;
}

HttpResponse HttpApi::HandleAuthorized(const HttpRequest& request, const HttpRoute& route,
                                       const std::optional<Principal>& caller) const {
  HttpQuery query;
  HttpQueryError error;
  auto parse = [&](std::vector<absl::string_view> allowed) {
    return HttpQuery::Parse(request.query, allowed, kMaxHttpQueryBytes, kMaxHttpQueryParams,
                            &query, &error);
  };
  if (route.kind != RouteKind::kCancel && !request.body.empty()) {
    return HttpError(absl::InvalidArgumentError("a GET request has no body"), "body");
  }
  switch (route.kind) {
    case RouteKind::kListJobs: {
      if (!parse({"state", "label", "page_size", "page_token"})) return QueryError(error);
      dino::v1::ListJobsRequest list;
      for (const std::string& name : query.Listed("state")) {
        dino::v1::JobState state;
        if (!ParseJobState(name, &state)) {
          return HttpError(absl::InvalidArgumentError(absl::StrCat(
                               "state \"", name.substr(0, 64),
                               "\" is not one of QUEUED, RUNNING, RESTARTING, SUCCEEDED, FAILED, "
                               "CANCELLED")),
                           "state");
        }
        list.add_states(state);
      }
      std::vector<std::string> labels = query.All("label");
      if (labels.size() > 16) {
        return HttpError(absl::InvalidArgumentError("at most 16 label filters"), "label");
      }
      for (const std::string& label : labels) {
        const size_t eq = label.find('=');
        if (eq == std::string::npos || eq == 0 || label.size() > 256) {
          return HttpError(absl::InvalidArgumentError("label must be key=value, at most 256 bytes"),
                           "label");
        }
        (*list.mutable_labels())[label.substr(0, eq)] = label.substr(eq + 1);
      }
      int64_t page_size = 0;
      std::string page_token;
      if (!query.Int("page_size", 0, 500, 0, &page_size, &error) ||
          !query.String("page_token", 256, "", &page_token, &error)) {
        return QueryError(error);
      }
      list.set_page_size(static_cast<int32_t>(page_size));
      list.set_page_token(page_token);
      auto jobs = coordinator_->ListJobs(list);
      if (!jobs.ok()) return HttpError(jobs.status(), "page_token");
      return Json(ToJson(*jobs));
    }
    case RouteKind::kGetJob: {
      if (!parse({})) return QueryError(error);
      auto job = coordinator_->GetJob(route.job_id);
      if (!job.ok()) return HttpError(job.status(), "job_id");
      return Json(ToJson(*job));
    }
    case RouteKind::kEvents: {
      if (!parse({"after_index", "limit", "skip_progress"})) return QueryError(error);
      int64_t after_index = 0;
      int64_t limit = 0;
      bool skip_progress = false;
      if (!query.Int("after_index", 0, INT64_MAX, 0, &after_index, &error) ||
          !query.Int("limit", 1, kMaxHttpEventsLimit, kDefaultHttpEventsLimit, &limit, &error) ||
          !query.Bool("skip_progress", false, &skip_progress, &error)) {
        return QueryError(error);
      }
      EventCollector collector(static_cast<size_t>(limit));
      auto token = coordinator_->Watch(route.job_id, after_index, skip_progress, &collector, limit);
      if (!token.ok()) return HttpError(token.status(), "job_id");
      if (*token > 0) coordinator_->Unwatch(*token);
      return Json(collector.ToJsonBody(after_index));
    }
    case RouteKind::kEventStream: {
      if (!parse({"after_index", "skip_progress"})) return QueryError(error);
      EventStreamStart start;
      start.job_id = route.job_id;
      if (!query.Int("after_index", 0, INT64_MAX, 0, &start.after_index, &error) ||
          !query.Bool("skip_progress", false, &start.skip_progress, &error)) {
        return QueryError(error);
      }
      // EventSource sends the id of the last event it got when it reconnects; it wins.
      if (auto last = request.headers.find("last-event-id"); last != request.headers.end()) {
        if (!absl::SimpleAtoi(last->second, &start.after_index) || start.after_index < 0) {
          return HttpError(absl::InvalidArgumentError("Last-Event-ID must be an event index"),
                           "Last-Event-ID");
        }
      }
      auto job = coordinator_->GetJob(route.job_id);
      if (!job.ok()) return HttpError(job.status(), "job_id");
      start.client = caller.has_value() && tokens_ != nullptr ? caller->name : request.remote;
      HttpResponse response;
      response.content_type = "text/event-stream";
      response.event_stream = std::move(start);
      return response;
    }
    case RouteKind::kCheckpoints: {
      if (!parse({})) return QueryError(error);
      auto checkpoints = coordinator_->ListCheckpoints(route.job_id);
      if (!checkpoints.ok()) return HttpError(checkpoints.status(), "job_id");
      dino::v1::ListCheckpointsResponse list;
      for (auto& checkpoint : *checkpoints) *list.add_checkpoints() = std::move(checkpoint);
      return Json(ToJson(list));
    }
    case RouteKind::kDownload: {
      if (!parse({})) return QueryError(error);
      auto opened = coordinator_->OpenCheckpoint(route.job_id, route.checkpoint_id, 0);
      if (!opened.ok()) return HttpError(opened.status(), "checkpoint_id");
      HttpResponse response;
      response.content_type = "application/octet-stream";
      const dino::v1::CheckpointInfo& info = opened->first;
      // Both ids passed CheckId, so the file name needs no quoting beyond the quotes.
      response.headers.emplace_back(
          "Content-Disposition",
          absl::StrCat("attachment; filename=\"", route.job_id, "-", info.id(), ".ckpt\""));
      response.headers.emplace_back("X-Checkpoint-Sha256", info.sha256());
      response.headers.emplace_back("X-Checkpoint-Id", info.id());
      response.blob = std::move(opened->second);
      return response;
    }
    case RouteKind::kMetrics: {
      if (!parse({"series", "max_points", "from_step", "to_step"})) return QueryError(error);
      dino::v1::GetJobMetricsRequest metrics;
      metrics.set_job_id(route.job_id);
      std::vector<std::string> series = query.Listed("series");
      if (series.size() > 16) return HttpError(absl::InvalidArgumentError("at most 16 series"), "series");
      for (const std::string& name : series) metrics.add_series(name.substr(0, 64));
      int64_t max_points = 0;
      int64_t from_step = 0;
      int64_t to_step = 0;
      if (!query.Int("max_points", 0, 100000, 0, &max_points, &error) ||
          !query.Int("from_step", 0, INT64_MAX, 0, &from_step, &error) ||
          !query.Int("to_step", 0, INT64_MAX, 0, &to_step, &error)) {
        return QueryError(error);
      }
      metrics.set_max_points(static_cast<int32_t>(max_points));
      metrics.set_from_step(from_step);
      metrics.set_to_step(to_step);
      auto result = coordinator_->GetJobMetrics(metrics);
      if (!result.ok()) {
        return HttpError(result.status(),
                         result.status().code() == absl::StatusCode::kNotFound ? "job_id" : "series");
      }
      return Json(ToJson(*result));
    }
    case RouteKind::kCancel: {
      if (!parse({})) return QueryError(error);
      if (request.body.size() > kMaxHttpBodyBytes) {
        HttpResponse response = HttpError(
            absl::InvalidArgumentError(absl::StrCat("body is ", request.body.size(),
                                                    " bytes; at most ", kMaxHttpBodyBytes)),
            "body");
        response.status = 413;
        return response;
      }
      dino::v1::CancelJobRequest cancel;
      if (!absl::StripAsciiWhitespace(request.body).empty()) {
        auto parsed = google::protobuf::util::JsonStringToMessage(request.body, &cancel);
        if (!parsed.ok()) {
          return HttpError(absl::InvalidArgumentError(absl::StrCat(
                               "body must be {\"reason\": \"...\"}: ", parsed.message().ToString())),
                           "body");
        }
      }
      if (!cancel.job_id().empty() && cancel.job_id() != route.job_id) {
        return HttpError(absl::InvalidArgumentError("job_id in the body differs from the path"),
                         "job_id");
      }
      if (cancel.reason().size() > 1024) {
        return HttpError(absl::InvalidArgumentError("reason is longer than 1024 bytes"), "reason");
      }
      // The coordinator checks ownership in the critical section of the cancel itself: without
      // auth the caller is the anonymous admin, a submitter cancels only its own jobs.
      JobCaller job_caller;
      if (caller.has_value()) {
        job_caller.name = caller->name;
        job_caller.admin = caller->role == Role::kAdmin;
      }
      std::string reason = cancel.reason();
      if (reason.empty()) reason = absl::StrCat("cancelled from the web API by ", job_caller.name);
      auto job = coordinator_->CancelJob(route.job_id, reason, job_caller);
      if (!job.ok()) {
        return HttpError(job.status(), absl::IsNotFound(job.status()) ? "job_id" : "");
      }
      return Json(ToJson(*job));
    }
    case RouteKind::kWorkers: {
      if (!parse({"include_dead"})) return QueryError(error);
      bool include_dead = false;
      if (!query.Bool("include_dead", false, &include_dead, &error)) return QueryError(error);
      dino::v1::ListWorkersResponse list;
      for (auto& worker : coordinator_->ListWorkers(include_dead)) {
        *list.add_workers() = std::move(worker);
      }
      return Json(ToJson(list));
    }
  }
  return HttpError(absl::InternalError("unhandled route"));
}

}  // namespace dino::server
