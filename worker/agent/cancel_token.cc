#include "worker/agent/cancel_token.h"

#include <utility>

namespace dino::agent {

void CancelToken::Cancel() {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return;
  cancelled_ = true;
  for (auto& [id, callback] : callbacks_) callback();
}

bool CancelToken::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

CancelToken::Registration::Registration(CancelToken* token, std::function<void()> on_cancel)
    : token_(token) {
  if (token_ == nullptr) return;
  absl::MutexLock lock(&token_->mu_);
  if (token_->cancelled_) {
    on_cancel();
    return;
  }
  id_ = token_->next_id_++;
  token_->callbacks_.emplace(id_, std::move(on_cancel));
}

CancelToken::Registration::~Registration() {
  if (token_ == nullptr || id_ < 0) return;
  absl::MutexLock lock(&token_->mu_);
  token_->callbacks_.erase(id_);
}

}  // namespace dino::agent
