#include "server/http_event_stream.h"

#include <algorithm>
#include <deque>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/watch_resume.h"

namespace dino::server {
namespace {

const char* EventKind(const dino::v1::JobEvent& event) {
  switch (event.event_case()) {
    case dino::v1::JobEvent::kStateChange: return "state_change";
    case dino::v1::JobEvent::kProgress: return "progress";
    case dino::v1::JobEvent::kCheckpoint: return "checkpoint";
    case dino::v1::JobEvent::kCollapseWarning: return "collapse_warning";
    default: return "event";
  }
}

// The Coordinator's sink: queues at most `max_lag` events, like the gRPC WatchReactor.
class QueueSink final : public EventSink {
 public:
  explicit QueueSink(size_t max_lag) : max_lag_(max_lag) {}

  void OnEvent(const dino::v1::JobEvent& event) override {
    absl::MutexLock lock(&mu_);
    if (end_.has_value()) return;
    if (queue_.size() >= max_lag_) {
      end_ = WatchResumeError("this reader fell behind (--max-watch-lag-events)");
      return;
    }
    queue_.push_back(event);
  }
  void OnEnd(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (!end_.has_value()) end_ = status;
  }

  // Waits up to `timeout` for events or the end; moves out what is there.
  void Take(absl::Duration timeout, std::deque<dino::v1::JobEvent>* events,
            std::optional<absl::Status>* end) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](QueueSink* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
                               return !self->queue_.empty() || self->end_.has_value();
                             },
                             this),
                         timeout);
    events->swap(queue_);
    queue_.clear();
    // The end is reported only once every queued event was handed out.
    *end = end_;
  }

 private:
  const size_t max_lag_;
  absl::Mutex mu_;
  std::deque<dino::v1::JobEvent> queue_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::string FormatSseEvent(const dino::v1::JobEvent& event) {
  return absl::StrCat("id: ", event.index(), "\nevent: ", EventKind(event), "\ndata: ",
                      ToJson(event), "\n\n");
}

absl::Status StreamJobEvents(Coordinator* coordinator, const EventStreamStart& start,
                             const EventStreamOptions& options,
                             const std::function<bool(absl::string_view)>& write,
                             const std::function<bool()>& stopping) {
  const int64_t max_lag = std::max<int64_t>(1, options.max_lag_events);
  QueueSink sink(static_cast<size_t>(max_lag));
  absl::StatusOr<int64_t> token =
      coordinator->Watch(start.job_id, start.after_index, start.skip_progress, &sink, max_lag);
  if (!token.ok()) return token.status();
  absl::Status result = absl::OkStatus();
  // EventSource waits this long before reconnecting after a resume or a dropped connection.
  bool alive = write("retry: 1000\n\n");
  absl::Duration quiet = absl::ZeroDuration();
  while (alive) {
    if (stopping()) {
      result = absl::UnavailableError("the server is stopping");
      break;
    }
    std::deque<dino::v1::JobEvent> events;
    std::optional<absl::Status> end;
    const absl::Duration wait = std::min(absl::Seconds(1), options.keepalive);
    sink.Take(wait, &events, &end);
    for (const dino::v1::JobEvent& event : events) {
      if (!(alive = write(FormatSseEvent(event)))) break;
    }
    if (!alive) break;
    if (end.has_value()) {
      if (end->ok()) {
        absl::StatusOr<dino::v1::Job> job = coordinator->GetJob(start.job_id);
        alive = write(absl::StrCat("event: end\ndata: ", job.ok() ? ToJson(*job) : "{}", "\n\n"));
      } else if (IsWatchResume(*end)) {
        alive = write("event: resume\ndata: {}\n\n");
      } else {
        result = *end;
      }
      break;
    }
    quiet = events.empty() ? quiet + wait : absl::ZeroDuration();
    if (quiet >= options.keepalive) {
      alive = write(": keepalive\n\n");
      quiet = absl::ZeroDuration();
    }
  }
  if (*token > 0) coordinator->Unwatch(*token);
  if (!alive) return absl::CancelledError("the client went away");
  return result;
}

}  // namespace dino::server
