// ServerLimits: what one request may cost the coordinator, and the checks that enforce it.
//
// Every limit is a dino-coordinator flag (server/main.cc, listed in --help with its default):
//   --max-message-bytes       gRPC receive and send size of one message (gRPC itself answers
//                             RESOURCE_EXHAUSTED for a larger one, before any handler runs)
//   --max-spec-bytes          serialized size of a submitted JobSpec
//   --max-watch-streams       open WatchJob streams per client
//   --max-watch-lag-events    events queued for one WatchJob stream whose client reads too slowly;
//                             past it the stream ends UNAVAILABLE and the client resumes with
//                             after_index (the events stay in the store, none is lost)
//   --max-upload-chunk-bytes  one data message of UploadCheckpoint
//   --max-checkpoint-bytes    the announced (and so the stored) size of one checkpoint
//   --data-roots              where data paths in a spec may point (common/path_confinement.h)
// Field ranges of a spec (crops, batch, image sizes, dims, epochs) are job_spec.cc's.
//
// A client, for the per-client limits, is its authenticated name when the call carries one
// (auth_interceptor.h), else the host part of its peer address ("ipv4:127.0.0.1"), so that one
// machine cannot dodge the limit by opening more connections.
//
// Thread-safety: ServerLimits is a plain value; the check functions are stateless;
// WatchStreamLimiter is internally locked.
// Failure: INVALID_ARGUMENT for a spec too large or a data path outside the roots,
// RESOURCE_EXHAUSTED for counts over a limit (back-pressure: worth trying again later), and
// OUT_OF_RANGE for a checkpoint or upload chunk over its size limit: a permanent refusal, which the
// worker does not retry (the same bytes would be refused again) but fails the attempt with
// FAILURE_REASON_COORDINATOR_LIMIT. Every message names the flag. The worker learns both size
// limits from RegisterResponse and keeps under them.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/path_confinement.h"
#include "dino/v1/job.pb.h"

namespace dino::server {

struct ServerLimits {
  int64_t max_message_bytes = 16 << 20;
  int64_t max_spec_bytes = 64 << 10;
  int64_t max_watch_streams_per_client = 64;
  int64_t max_watch_lag_events = 10000;
  int64_t max_upload_chunk_bytes = 4 << 20;
  int64_t max_checkpoint_bytes = int64_t{16} << 30;
  PathConfinement data_roots = PathConfinement::Unconfined();
};

// The spec's serialized size and its data paths (data.path, data.labels_path, data.eval_path,
// data.eval_labels_path; unset or empty ones are skipped).
absl::Status CheckSubmittedSpec(const dino::v1::JobSpec& spec, const ServerLimits& limits);
// One UploadCheckpoint data message.
absl::Status CheckUploadChunk(size_t bytes, const ServerLimits& limits);
// A checkpoint's announced size_bytes.
absl::Status CheckCheckpointSize(int64_t size_bytes, const ServerLimits& limits);

// The key for per-client limits: `auth_name` when non-empty, else `peer` without its port
// ("ipv4:127.0.0.1:5000" -> "ipv4:127.0.0.1", "ipv6:[::1]:5000" -> "ipv6:[::1]").
std::string ClientKey(absl::string_view peer, absl::string_view auth_name);

// Counts open streams per client key.
class WatchStreamLimiter {
 public:
  explicit WatchStreamLimiter(int64_t max_per_client) : max_per_client_(max_per_client) {}
  // Takes one slot for `client`, or RESOURCE_EXHAUSTED naming the limit. Each OK needs a Release.
  absl::Status Acquire(const std::string& client);
  void Release(const std::string& client);
  int64_t open(const std::string& client) const;

 private:
  const int64_t max_per_client_;
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dino::server
