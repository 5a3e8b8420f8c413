// Conversion between absl::Status and grpc::Status: the one place where the two meet.
//
// Codes map one to one (both follow google.rpc.Code), and the message is carried unchanged, so a
// client sees exactly the INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION / UNAVAILABLE /
// ABORTED that the plain classes returned.
//
// Thread-safety: stateless. Failure: never fails; unknown codes become UNKNOWN.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace dino {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace dino
