// A job's events as server-sent events (text/event-stream), for GET /api/v1/jobs/{id}/events/stream.
//
// Each event is written as
//   id: <index>          (EventSource sends it back as Last-Event-ID when it reconnects)
//   event: <kind>        state_change, progress, checkpoint or collapse_warning
//   data: <the JobEvent in protobuf's JSON mapping, one line>
// After the event that made the job terminal comes `event: end` with the job, and the stream ends.
// The bound is WatchJob's (--max-watch-lag-events): at most that many events are replayed or
// queued for a slow reader; then the stream ends with `event: resume` and the client reconnects
// with Last-Event-ID, reading the rest from the store. A comment line is sent when nothing
// happened for `keepalive`, which also finds clients that went away.
//
// Ownership: borrows the Coordinator and the callbacks for the duration of the call.
// Thread-safety: StreamJobEvents blocks its calling thread (an HTTP worker) until the stream
// ends; the Coordinator calls the internal sink from its own threads.
// Failure: returns Watch's error when the stream could not start (nothing was written then),
// UNAVAILABLE when the coordinator shut down or `stopping` turned true, CANCELLED when a write
// failed (the client went away), OK after `end` or `resume`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/coordinator.h"
#include "server/http_api.h"

namespace dino::server {

struct EventStreamOptions {
  int64_t max_lag_events = 10000;  // ServerLimits::max_watch_lag_events.
  absl::Duration keepalive = absl::Seconds(15);
};

// The SSE frame of one event.
std::string FormatSseEvent(const dino::v1::JobEvent& event);

// Writes the stream through `write` (false: the client is gone). `stopping` is polled about once a
// second; true ends the stream (server shutdown).
absl::Status StreamJobEvents(Coordinator* coordinator, const EventStreamStart& start,
                             const EventStreamOptions& options,
                             const std::function<bool(absl::string_view)>& write,
                             const std::function<bool()>& stopping);

}  // namespace dino::server
