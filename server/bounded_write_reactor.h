// BoundedWriteReactor<Base, Message>: the write side of a server-streaming or bidirectional
// callback reactor (Base is grpc::ServerWriteReactor<Message> or grpc::ServerBidiReactor<In,
// Message>). Messages are queued from any thread and written one at a time; the stream ends with
// a status once the queue has drained (EndAfterQueued), or at once, dropping what is queued
// (EndNow). At most `max_queued` messages wait: the one after ends the stream with the overflow
// status given at construction, after those queued. When OnDone comes, OnStreamDone runs and the
// reactor deletes itself.
//
// A reactor that registers itself somewhere in its constructor (and may be called from there
// before the constructor returns) starts held: nothing is written or finished until it calls
// Start(), so OnDone cannot come before the constructor is done.
//
// Ownership: allocate with new; the reactor deletes itself after OnDone.
// Thread-safety: Enqueue, EndAfterQueued, EndNow and Start are safe from any thread and may be
// called with other locks held (they only queue, or start a write or the Finish). OnFinishing is
// called with the queue's mutex held, so it must not call back into the queue.
// Failure: the end status is the stream's (ToGrpcStatus); a failed write ends the stream with
// CANCELLED and `write_failed_message`.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"

namespace dino::server {

template <typename Base, typename Message>
class BoundedWriteReactor : public Base {
 public:
  struct Options {
    // 0: no bound.
    size_t max_queued = 0;
    // Ends the stream (after the queued messages) when a message comes while max_queued wait.
    absl::Status overflow;
    // Why a failed write ended the stream (CANCELLED).
    std::string write_failed_message;
    // False: hold writes and the Finish until Start().
    bool started = true;
  };

  // Queues `message` behind those waiting. Ignored once the stream is ending; when max_queued
  // already wait, ends the stream with the overflow status instead.
  void Enqueue(Message message) {
    absl::MutexLock lock(&mu_);
    if (end_.has_value()) return;
    if (options_.max_queued > 0 && queue_.size() >= options_.max_queued) {
      end_ = options_.overflow;
    } else {
      queue_.push_back(std::move(message));
    }
    PumpLocked();
  }

  // Ends the stream with `status` once the queued messages are written. Only the first end counts.
  void EndAfterQueued(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    if (end_.has_value()) return;
    end_ = status;
    PumpLocked();
  }

  // Ends the stream with `status` as soon as it is started, without the queued messages (and
  // without waiting for a write in flight). Overrides an EndAfterQueued, not an earlier EndNow.
  void EndNow(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    if (!end_now_) {
      end_now_ = true;
      end_ = status;
    }
    queue_.clear();
    PumpLocked();
  }

  // Lets a reactor constructed with started = false write and finish.
  void Start() {
    absl::MutexLock lock(&mu_);
    started_ = true;
    PumpLocked();
  }

  void OnWriteDone(bool ok) final {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !end_now_) {
      end_now_ = true;
      end_ = absl::CancelledError(options_.write_failed_message);
      queue_.clear();
    }
    PumpLocked();
  }

  void OnDone() final {
    OnStreamDone();
    delete this;
  }

 protected:
  explicit BoundedWriteReactor(Options options)
      : options_(std::move(options)), started_(options_.started) {}
  ~BoundedWriteReactor() override = default;

  // Called once, with the queue's mutex held, just before Finish(ToGrpcStatus(status)).
  virtual void OnFinishing(const absl::Status& /*status*/) {}
  // Called from OnDone, before the reactor deletes itself: the stream is over.
  virtual void OnStreamDone() {}

 private:
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!started_ || finished_) return;
    if (end_now_) {
      FinishLocked();
      return;
    }
    if (writing_) return;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      this->StartWrite(&current_);
      return;
    }
    if (end_.has_value()) FinishLocked();
  }

  void FinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    finished_ = true;
    OnFinishing(*end_);
    this->Finish(ToGrpcStatus(*end_));
  }

  const Options options_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool end_now_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  Message current_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dino::server
