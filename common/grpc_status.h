// Conversion between absl::Status and grpc::Status: the one place where the two meet.
//
// Codes map one to one (both follow google.rpc.Code), so a client sees exactly the
// INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION / UNAVAILABLE / ABORTED that the plain classes
// returned. The message is carried unchanged up to kMaxGrpcStatusMessageBytes; a longer one (say,
// a NOT_FOUND that quotes a 64 KiB job id sent by a client) is cut there and says how much was
// cut, because gRPC sends it in trailing metadata and a message over the peer's metadata limit
// (8 KiB by default) breaks the call and others on the same connection.
//
// Thread-safety: stateless. Failure: never fails; unknown codes become UNKNOWN.
#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>

#include "absl/status/status.h"

namespace dino {

inline constexpr size_t kMaxGrpcStatusMessageBytes = 1024;

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace dino
