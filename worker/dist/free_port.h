// PickFreeTcpPort: asks the kernel for a currently unused TCP port on the loopback interface (bind
// to port 0, read it back, close). Tests and local single-host runs use it to pick rendezvous
// ports without colliding with concurrent runs.
//
// Thread-safety: safe from any thread. Failure: UNAVAILABLE if no socket could be bound. The port
// is free when returned, not reserved: another process may take it before it is used.
#pragma once

#include "absl/status/statusor.h"

namespace dino::dist {

absl::StatusOr<int> PickFreeTcpPort();

}  // namespace dino::dist
