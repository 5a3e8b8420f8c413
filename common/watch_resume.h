// The planned end of a WatchJob stream, and how the client tells it from a failure.
//
// The coordinator ends a WatchJob stream with UNAVAILABLE after at most --max-watch-lag-events
// events (a long backlog is replayed in pages; a watcher that reads too slowly is cut off), and
// the client resumes with after_index = the last index it received. Such an end carries the
// trailing metadata `dino-watch-resume: 1`, so that a client resumes at once, without backoff and
// without reporting a reconnect, where an UNAVAILABLE without it (a coordinator going down) is
// retried with backoff. Inside the coordinator the end is an UNAVAILABLE absl::Status with the
// payload below, which the gRPC handler turns into that metadata.
//
// Thread-safety: stateless. Header-only; Abseil only.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace dino {

inline constexpr char kWatchResumeMetadataKey[] = "dino-watch-resume";
inline constexpr char kWatchResumePayloadUrl[] = "type.dinotrain/dino.WatchResume";

// UNAVAILABLE with `message`, marked as a planned resume point.
inline absl::Status WatchResumeError(absl::string_view message) {
  absl::Status status = absl::UnavailableError(message);
  status.SetPayload(kWatchResumePayloadUrl, absl::Cord("1"));
  return status;
}

inline bool IsWatchResume(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kWatchResumePayloadUrl).has_value();
}

}  // namespace dino
