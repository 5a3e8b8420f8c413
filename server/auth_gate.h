// NewAuthGatedService: registers a callback service so that calls the auth interceptor denied
// never reach the service's handlers (see auth_interceptor.h for why this is needed).
//
// The returned service has the same methods (names and streaming types, from the descriptor) and
// borrows `inner`'s handlers. Before each call it reads the call's decision from AuthCalls; a
// denied call is passed to the inner handler with the denial as its request status, which makes
// gRPC's generated callback handler skip the user handler and fail the call (the interceptor then
// sends the denial as the final status). An allowed call runs unchanged.
//
// Register the returned service instead of `inner`; `inner` must never be registered itself.
// Ownership: borrows `inner` and `calls`, which must outlive the returned service. Thread-safety:
// immutable after construction. Failure: a method of `inner` that is not a callback method is a
// programming error (checked at construction).
#pragma once

#include <grpcpp/impl/service_type.h>

#include <memory>

#include "server/auth_interceptor.h"

namespace google::protobuf {
class ServiceDescriptor;
}

namespace dino::server {

std::unique_ptr<grpc::Service> NewAuthGatedService(
    grpc::Service* inner, const google::protobuf::ServiceDescriptor* descriptor,
    const AuthCalls* calls);

}  // namespace dino::server
