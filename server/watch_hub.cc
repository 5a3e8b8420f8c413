#include "server/watch_hub.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/watch_resume.h"

namespace dino::server {

using dino::v1::JobEvent;

absl::StatusOr<int64_t> WatchHub::Watch(const std::string& job_id, int64_t after_index,
                                        bool skip_progress, EventSink* sink, int64_t max_backlog,
                                        bool job_ended) {
  const int64_t page = std::max<int64_t>(0, max_backlog);  // 0: all at once.
  int64_t cursor = after_index;
  int64_t sent = 0;
  while (true) {
    DINO_ASSIGN_OR_RETURN(std::vector<JobEvent> backlog, store_->ListEvents(job_id, cursor, page));
    for (const JobEvent& event : backlog) {
      cursor = event.index();
      if (skip_progress && event.has_progress()) continue;
      if (page > 0 && sent == page) {
        sink->OnEnd(WatchResumeError(
            absl::StrCat("more than ", page,
                         " events to replay (--max-watch-lag-events); resume with "
                         "after_index = the last index received")));
        return 0;
      }
      sink->OnEvent(event);
      ++sent;
    }
    if (page == 0 || static_cast<int64_t>(backlog.size()) < page) break;
  }
  if (job_ended) {
    sink->OnEnd(absl::OkStatus());
    return 0;
  }
  const int64_t token = next_token_++;
  watchers_[token] = Watcher{job_id, skip_progress, sink};
  return token;
}

void WatchHub::Remove(int64_t token) { watchers_.erase(token); }

void WatchHub::Publish(const std::string& job_id, absl::Span<const JobEvent> events,
                       bool job_ended) {
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    Watcher& watcher = it->second;
    if (watcher.job_id != job_id) {
      ++it;
      continue;
    }
    for (const JobEvent& event : events) {
      if (watcher.skip_progress && event.has_progress()) continue;
      watcher.sink->OnEvent(event);
    }
    if (job_ended) {
      watcher.sink->OnEnd(absl::OkStatus());
      it = watchers_.erase(it);
    } else {
      ++it;
    }
  }
}

void WatchHub::EndAll(const absl::Status& status) {
  for (auto& [token, watcher] : watchers_) watcher.sink->OnEnd(status);
  watchers_.clear();
}

}  // namespace dino::server
