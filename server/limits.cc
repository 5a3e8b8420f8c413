#include "server/limits.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spec/data_paths.h"

namespace dino::server {

absl::Status CheckSubmittedSpec(const dino::v1::JobSpec& spec, const ServerLimits& limits) {
  const size_t bytes = spec.ByteSizeLong();
  if (static_cast<int64_t>(bytes) > limits.max_spec_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec is ", bytes, " bytes, more than the limit --max-spec-bytes=", limits.max_spec_bytes));
  }
  return spec::CheckSpecDataPaths(spec, limits.data_roots);
}

absl::Status CheckUploadChunk(size_t bytes, const ServerLimits& limits) {
  if (static_cast<int64_t>(bytes) > limits.max_upload_chunk_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "checkpoint upload chunk of ", bytes,
        " bytes is more than the limit --max-upload-chunk-bytes=", limits.max_upload_chunk_bytes));
  }
  return absl::OkStatus();
}

absl::Status CheckCheckpointSize(int64_t size_bytes, const ServerLimits& limits) {
  if (size_bytes > limits.max_checkpoint_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "checkpoint of ", size_bytes,
        " bytes is more than the limit --max-checkpoint-bytes=", limits.max_checkpoint_bytes));
  }
  return absl::OkStatus();
}

std::string ClientKey(absl::string_view peer, absl::string_view auth_name) {
  if (!auth_name.empty()) return absl::StrCat("name:", auth_name);
  const size_t colon = peer.rfind(':');
  const size_t bracket = peer.rfind(']');
  // "ipv4:1.2.3.4:port" and "ipv6:[::1]:port" end in ":port"; "unix:/path" and in-process
  // peers have no port to strip.
  if (colon != absl::string_view::npos && colon > peer.find(':') &&
      (bracket == absl::string_view::npos || colon > bracket)) {
    return std::string(peer.substr(0, colon));
  }
  return std::string(peer);
}

absl::Status WatchStreamLimiter::Acquire(const std::string& client) {
  absl::MutexLock lock(&mu_);
  int64_t& open = open_[client];
  if (open >= max_per_client_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(client, " already has ", open,
                     " open watch streams, the limit --max-watch-streams=", max_per_client_));
  }
  ++open;
  return absl::OkStatus();
}

void WatchStreamLimiter::Release(const std::string& client) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(client);
  if (it == open_.end()) return;
  if (--it->second <= 0) open_.erase(it);
}

int64_t WatchStreamLimiter::open(const std::string& client) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(client);
  return it == open_.end() ? 0 : it->second;
}

}  // namespace dino::server
