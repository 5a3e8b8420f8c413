// The routes of the JSON API (server/http_api.h): which path is which call, which HTTP method it
// answers, and which JobService method's role rule authorizes it.
//
// Thread-safety: pure functions. Failure: an unknown path has no route (404 for the caller).
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace dino::server {

enum class RouteKind {
  kListJobs,
  kGetJob,
  kEvents,
  kEventStream,
  kCheckpoints,
  kDownload,
  kMetrics,
  kCancel,
  kWorkers
};

struct HttpRoute {
  RouteKind kind;
  const char* method;       // The one HTTP method it answers.
  const char* grpc_method;  // The JobService method whose role rule applies.
  std::string job_id;
  std::string checkpoint_id;
};

// The route of `path` ("/api/v1/jobs/job-1/events"), or nullopt. Path parameters are taken as
// they are; the caller checks them.
std::optional<HttpRoute> MatchHttpRoute(absl::string_view path);

}  // namespace dino::server
