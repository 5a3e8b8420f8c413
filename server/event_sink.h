// EventSink: receives a job's events for WatchJob (job_service.cc implements it over the stream's
// reactor; the HTTP event stream over its connection).
//
// Ownership: borrowed by the coordinator's WatchHub. After OnEnd no more calls come, and the sink
// may be destroyed once Coordinator::Unwatch has returned (or right away when Watch returned
// token 0).
// Thread-safety: called with the coordinator's mutex held, so an implementation must queue and
// return, never block or call into the Coordinator.
// Failure: none reported.
#pragma once

#include "absl/status/status.h"
#include "dino/v1/job.pb.h"

namespace dino::server {

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnEvent(const dino::v1::JobEvent& event) = 0;
  // OK after the event that made the job terminal; UNAVAILABLE on shutdown.
  virtual void OnEnd(const absl::Status& status) = 0;
};

}  // namespace dino::server
