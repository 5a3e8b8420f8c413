#include "server/http_routes.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace dino::server {

std::optional<HttpRoute> MatchHttpRoute(absl::string_view path) {
  constexpr absl::string_view kPrefix = "/api/v1/";
  if (!absl::ConsumePrefix(&path, kPrefix)) return std::nullopt;
  absl::ConsumeSuffix(&path, "/");
  std::vector<std::string> s = absl::StrSplit(path, '/');
  using K = RouteKind;
  auto route = [](K kind, const char* method, const char* rpc, std::string job = "",
                  std::string checkpoint = "") {
    return HttpRoute{kind, method, rpc, std::move(job), std::move(checkpoint)};
  };
  if (s.size() == 1 && s[0] == "workers") return route(K::kWorkers, "GET", "ListWorkers");
  if (s.empty() || s[0] != "jobs") return std::nullopt;
  if (s.size() == 1) return route(K::kListJobs, "GET", "ListJobs");
  const std::string& id = s[1];
  if (s.size() == 2) return route(K::kGetJob, "GET", "GetJob", id);
  if (s.size() == 3 && s[2] == "events") return route(K::kEvents, "GET", "WatchJob", id);
  if (s.size() == 4 && s[2] == "events" && s[3] == "stream") {
    return route(K::kEventStream, "GET", "WatchJob", id);
  }
  if (s.size() == 3 && s[2] == "checkpoints") {
    return route(K::kCheckpoints, "GET", "ListCheckpoints", id);
  }
  if (s.size() == 5 && s[2] == "checkpoints" && s[4] == "download") {
    return route(K::kDownload, "GET", "DownloadCheckpoint", id, s[3]);
  }
  if (s.size() == 3 && s[2] == "metrics") return route(K::kMetrics, "GET", "GetJobMetrics", id);
  if (s.size() == 3 && s[2] == "cancel") return route(K::kCancel, "POST", "CancelJob", id);
  return std::nullopt;
}

}  // namespace dino::server
