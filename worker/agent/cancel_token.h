// CancelToken: a one-shot cancellation signal for the calls and collectives of one attempt.
//
// The AttemptRunner owns one token; Abort() cancels it. Code that blocks on something the token
// must be able to break (a gRPC call's ClientContext, a c10d process group) registers a callback
// for as long as it blocks (CancelToken::Registration); Cancel() runs the callbacks that are
// registered, and a callback registered after Cancel() runs at once.
//
// Ownership: the owner of the blocking work owns the token and keeps it alive while anything is
// registered. Thread-safety: every method may be called from any thread. A callback runs under
// the token's lock, so unregistering waits for a callback that is running; a callback must not
// call back into the token. Failure: none.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dino::agent {

class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel();
  bool cancelled() const;

  // Keeps `on_cancel` registered with `token` (may be null: nothing is registered) until it is
  // destroyed.
  class Registration {
   public:
    Registration(CancelToken* token, std::function<void()> on_cancel);
    ~Registration();
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    CancelToken* const token_;
    int64_t id_ = -1;
  };

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dino::agent
