// WorkerChannel: the push side of one worker's Connect stream, as the coordinator sees it
// (worker_service.cc implements it over the stream's reactor).
//
// Ownership: shared between the stream reactor and the coordinator's WorkerRegistry, which may
// hold it a little after the stream ended (then it does nothing).
// Thread-safety: called with the coordinator's mutex held, so an implementation must queue and
// return, never block or call into the Coordinator.
// Failure: none reported; a message for a stream that broke is dropped.
#pragma once

#include "absl/status/status.h"
#include "dino/v1/coordinator.pb.h"

namespace dino::server {

class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  virtual void Send(const dino::v1::CoordinatorMessage& message) = 0;
  // Ends the stream with `status` after the queued messages.
  virtual void Close(const absl::Status& status) = 0;
};

}  // namespace dino::server
