// Retrying calls to the coordinator: which failures are worth another try, and the loop that
// retries them with capped exponential backoff on the injected Clock.
//
// Thread-safety: stateless. Failure: RetryTransient returns the call's first non-transient status,
// or CANCELLED when `stop` asked it to give up.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"

namespace dino::agent {

// True for failures worth retrying once the coordinator is back (RESOURCE_EXHAUSTED included:
// back-pressure).
bool IsTransient(const absl::Status& status);

// True for the coordinator's permanent refusal of something over one of its size limits (a
// checkpoint over --max-checkpoint-bytes, a chunk over --max-upload-chunk-bytes): OUT_OF_RANGE,
// as server/limits.h answers and CoordinatorLink refuses locally. The same bytes would be refused
// again, so the attempt fails instead of retrying.
bool IsLimitRefusal(const absl::Status& status);

// Calls `call` until it succeeds, fails with a non-transient status, or `stop` returns true
// (then CANCELLED). Waits with capped exponential backoff between tries, logging each retry.
absl::Status RetryTransient(const std::string& what, const std::function<absl::Status()>& call,
                            const std::function<bool()>& stop, Clock* clock);

}  // namespace dino::agent
