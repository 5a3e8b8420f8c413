#include "common/token_transport.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/grpc_credentials.h"

namespace dino {

bool IsLoopbackTarget(absl::string_view target) {
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) return true;
  if (absl::ConsumePrefix(&target, "dns:")) {
    // "dns:[//authority/]host[:port]": the authority names a DNS server, not the target.
    if (absl::ConsumePrefix(&target, "//")) {
      const size_t slash = target.find('/');
      if (slash == absl::string_view::npos) return false;
      target.remove_prefix(slash + 1);
    }
  } else if (absl::ConsumePrefix(&target, "ipv4:") || absl::ConsumePrefix(&target, "ipv6:")) {
    // A list: the channel may use any of its addresses, so every one must be loopback.
    for (absl::string_view address : absl::StrSplit(target, ',')) {
      if (address.empty() || !IsLoopbackAddress(address)) return false;
    }
    return true;
  }
  if (target.empty()) return false;
  return IsLoopbackAddress(target);
}

absl::Status CheckTokenTransport(absl::string_view target, bool has_token, bool tls,
                                 bool insecure) {
  if (!has_token || tls || insecure || IsLoopbackTarget(target)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to send a bearer token in plaintext to ", target,
      " (not a loopback address): verify the coordinator with --tls-ca, or pass --insecure to "
      "send it unencrypted anyway"));
}

}  // namespace dino
