// May a bearer token go to this coordinator over this channel? One decision, shared by dinoctl and
// dino-worker.
//
// A token sent over plaintext gRPC can be read by anyone on the path, and it keeps working until
// the operator revokes it. So a token travels over TLS (a --tls-ca was given), over plaintext only
// to a loopback target (localhost, 127.0.0.0/8, ::1, unix: sockets), and elsewhere only when the
// user says so with --insecure. Without a token there is nothing to protect and every channel is
// allowed (the coordinator answers UNAUTHENTICATED if it wants one).
//
// Targets may carry a gRPC resolver scheme: "dns:///host:port", "ipv4:127.0.0.1:50051",
// "ipv6:[::1]:50051" and "unix:path" are understood; an ipv4:/ipv6: list is loopback only when
// every address in it is (the channel may use any of them).
//
// Thread-safety: pure functions. Failure: FAILED_PRECONDITION naming the target and the two ways
// out (--tls-ca, --insecure), meant to be printed as it is.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dino {

// True when `target` (a gRPC channel target, see above) only reaches this machine.
bool IsLoopbackTarget(absl::string_view target);

// OK when a channel to `target` may carry a bearer token (`has_token`): with TLS (`tls`), to a
// loopback target, or with `insecure` (--insecure).
absl::Status CheckTokenTransport(absl::string_view target, bool has_token, bool tls, bool insecure);

// The warning for a token given on the command line (--token): other users of the machine can read
// a process's arguments (ps, /proc/PID/cmdline).
inline constexpr char kTokenFlagWarning[] =
    "warning: --token is visible to other users of this machine (ps, /proc); prefer --token-file "
    "or DINO_TOKEN";

}  // namespace dino
