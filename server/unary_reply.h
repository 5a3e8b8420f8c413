// Done: how every unary callback handler of the coordinator's gRPC services finishes: the call's
// default reactor, finished with the Status mapped by ToGrpcStatus (common/grpc_status.h).
//
// Thread-safety: stateless. Failure: never fails; the status is the call's.
#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "common/grpc_status.h"

namespace dino::server {

inline grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                                      const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace dino::server
