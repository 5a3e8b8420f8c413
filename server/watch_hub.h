// WatchHub: the live side of WatchJob. It replays a job's stored events to a new watcher (in
// pages, cut short with a resume error when the backlog is longer than the watcher may be sent at
// once), then keeps the watcher under a token and fans every event the coordinator commits for
// that job out to it, until the job ends, the watcher leaves (Unwatch) or the coordinator shuts
// down.
//
// It does not know the jobs: the Coordinator tells it whether a job has ended (Watch) and hands it
// each job's new events once they are committed (Publish).
//
// Ownership: borrows the Store (must outlive it) and the EventSinks (event_sink.h: a sink may be
// destroyed once Remove has returned for its token, or right away when Watch returned 0). Owned
// by the Coordinator.
// Thread-safety: none of its own. The Coordinator holds it under its mutex, so every method must
// be called with that mutex held; sinks are called from the calling thread, with that mutex held,
// so they must only queue work and never call back in.
// Failure: Watch returns the Store's errors (nothing is registered then, though part of the
// backlog may have been delivered); the rest never fails.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "dino/v1/job.pb.h"
#include "server/event_sink.h"
#include "server/store.h"

namespace dino::server {

class WatchHub {
 public:
  explicit WatchHub(Store* store) : store_(store) {}
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Sends `sink` the stored events of `job_id` after `after_index` (without progress events when
  // `skip_progress`). With `max_backlog` > 0 they are read in pages of that many, and when more
  // than `max_backlog` are to be sent, the first `max_backlog` are followed by
  // OnEnd(WatchResumeError(...)) and 0 is returned. When `job_ended`, the replay ends with
  // OnEnd(OK) and 0 is returned. Otherwise the sink is registered and its token (> 0) returned.
  absl::StatusOr<int64_t> Watch(const std::string& job_id, int64_t after_index, bool skip_progress,
                                EventSink* sink, int64_t max_backlog, bool job_ended);
  // Forgets the watcher; an unknown token (already ended) is ignored.
  void Remove(int64_t token);
  // Delivers `events`, just committed for `job_id`, to its watchers. When `job_ended`, each of
  // them then gets OnEnd(OK) and is forgotten.
  void Publish(const std::string& job_id, absl::Span<const dino::v1::JobEvent> events,
               bool job_ended);
  // Ends every watcher with `status` and forgets them all.
  void EndAll(const absl::Status& status);

  size_t size() const { return watchers_.size(); }

 private:
  struct Watcher {
    std::string job_id;
    bool skip_progress = false;
    EventSink* sink = nullptr;
  };

  Store* const store_;
  std::map<int64_t, Watcher> watchers_;
  int64_t next_token_ = 1;
};

}  // namespace dino::server
