#include "worker/agent/retry.h"

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/logging.h"

namespace dino::agent {

bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsResourceExhausted(status) || absl::IsUnknown(status) || absl::IsInternal(status) ||
         absl::IsAborted(status);
}

bool IsLimitRefusal(const absl::Status& status) { return absl::IsOutOfRange(status); }

absl::Status RetryTransient(const std::string& what, const std::function<absl::Status()>& call,
                            const std::function<bool()>& stop, Clock* clock) {
  Backoff backoff({absl::Milliseconds(200), absl::Seconds(5)});
  for (int attempt = 1;; ++attempt) {
    if (stop && stop()) return absl::CancelledError(absl::StrCat(what, ": stopped"));
    absl::Status status = call();
    if (status.ok() || !IsTransient(status)) return status;
    if (stop && stop()) return absl::CancelledError(absl::StrCat(what, ": stopped"));
    const absl::Duration delay = backoff.Next();
    DINO_LOG(WARNING) << what << " failed (try " << attempt << "): " << status << "; retrying in "
                      << delay;
    clock->SleepFor(delay);
  }
}

}  // namespace dino::agent
