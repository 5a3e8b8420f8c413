// HttpApi: the coordinator's JSON API under /api/v1/, as a plain class. It takes a parsed request
// and returns a status and a body; server/http_server.h carries it over HTTP or HTTPS.
//
//   GET  /api/v1/jobs                      ?state=RUNNING&label=k=v&page_size=50&page_token=...
//   GET  /api/v1/jobs/{id}
//   GET  /api/v1/jobs/{id}/events          ?after_index=0&limit=500&skip_progress=true
//   GET  /api/v1/jobs/{id}/events/stream   server-sent events; Last-Event-ID or ?after_index
//   GET  /api/v1/jobs/{id}/checkpoints
//   GET  /api/v1/jobs/{id}/checkpoints/{checkpoint}/download
//   GET  /api/v1/jobs/{id}/metrics         ?series=loss&max_points=500&from_step=0&to_step=0
//   GET  /api/v1/workers                   ?include_dead=true
//   POST /api/v1/jobs/{id}/cancel          body {"reason": "..."} (optional)
//
// Bodies are protobuf's JSON mapping of the same messages the gRPC JobService returns
// (MessageToJsonString: lowerCamelCase names, enums by name, int64 as strings), so a JSON client
// and a gRPC client read the same fields. Errors are {"error": {"code", "status", "message",
// "field"}}.
//
// Security is the gRPC server's: `Authorization: Bearer <token>` looked up in the same TokenTable,
// and each route is authorized as the gRPC method it mirrors (AuthorizeCall), so the role rules are
// written once. A submitter may cancel only the jobs it submitted. No cookies are read, so a page
// on another origin cannot act with a visitor's credentials. Without a TokenTable auth is off, as
// on gRPC. Query strings, parameters, ids and bodies are bounded (kMax* below).
//
// The two streaming routes are not answered here: the response carries what to stream (a verified
// BlobReader, or the event stream's start) and the transport streams it (server/http_event_stream.h
// for events).
//
// Ownership: borrows the Coordinator and the TokenTable (may be null), which must outlive it.
// Thread-safety: immutable after construction; Handle may run on many threads at once (the
// Coordinator is thread-safe).
// Failure: every outcome is an HttpResponse; 400 (a bad parameter, named in "field"), 401 (no or
// an unknown token), 403 (the role may not), 404 (unknown route, job or checkpoint), 405, 409 (a
// wrong state), 413 (a body or query too large), 503 (shutting down), 500 otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/auth_tokens.h"
#include "server/blob_reader.h"
#include "server/coordinator.h"

namespace google::protobuf {
class Message;
}

namespace dino::server {

inline constexpr size_t kMaxHttpQueryBytes = 4096;
inline constexpr size_t kMaxHttpQueryParams = 32;
inline constexpr size_t kMaxHttpBodyBytes = 4096;
inline constexpr size_t kMaxHttpIdBytes = 128;
inline constexpr int64_t kDefaultHttpEventsLimit = 500;
inline constexpr int64_t kMaxHttpEventsLimit = 1000;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // Percent-decoded, without the query: "/api/v1/jobs/job-1".
  std::string query;   // Raw, still percent-encoded: "state=RUNNING&label=team%3Dvision".
  std::map<std::string, std::string> headers;  // Names in lower case.
  std::string body;
  // Who is asking, for per-client limits when there is no token: the remote address.
  std::string remote;
};

// What the transport streams after the headers of a 200 event-stream response.
struct EventStreamStart {
  std::string job_id;
  int64_t after_index = 0;
  bool skip_progress = false;
  std::string client;  // Token name, else the remote address: the --max-watch-streams key.
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A checkpoint download: the body is this reader's bytes (verified as read).
  std::unique_ptr<BlobReader> blob;
  // An event stream: the body is the job's events as server-sent events.
  std::optional<EventStreamStart> event_stream;
};

struct HttpRoute;  // A matched /api/v1/ path (http_routes.h).

class HttpApi {
 public:
  HttpApi(Coordinator* coordinator, const TokenTable* tokens);

  // Answers a request whose path starts with /api/v1/ (anything else is 404).
  HttpResponse Handle(const HttpRequest& request) const;

 private:
  HttpResponse HandleAuthorized(const HttpRequest& request, const HttpRoute& route,
                                const std::optional<Principal>& caller) const;

  Coordinator* const coordinator_;
  const TokenTable* const tokens_;
};

// The JSON error body and status for `status` (code mapped as described above). `field` names the
// offending parameter when there is one.
HttpResponse HttpError(const absl::Status& status, absl::string_view field = "");
int HttpStatusFor(absl::StatusCode code);
// protobuf's JSON mapping of `message` (see above); "{}" cannot fail for our messages.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace dino::server
