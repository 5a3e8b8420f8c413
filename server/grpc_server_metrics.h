// GrpcServerMetrics: the conventional gRPC server series, collected by a server interceptor:
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}      RPCs started
//   grpc_server_handled_total{grpc_service,grpc_method,grpc_code}      RPCs finished, by code
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}   start to status (histogram)
// The names and label values follow go-grpc-prometheus, which operators' dashboards expect:
// grpc_type is unary | client_stream | server_stream | bidi_stream, grpc_code is the canonical
// upper-case code name (OK, INVALID_ARGUMENT, UNAVAILABLE, ...). Label values are bounded: the
// services and methods registered on the server, and the 17 codes.
//
// Usage: put the factory FIRST in ServerBuilder::experimental().SetInterceptorCreators, so that a
// call rejected by a later interceptor (e.g. authentication) is still counted with its code.
//
// An RPC is started when the server creates its interceptors (the call matched a registered
// method), and handled when its status is sent. A call that ends without the server sending a
// status (the client cancelled it, or the server shut down first) is counted as CANCELLED when
// gRPC releases it.
//
// Ownership: the metric families live in the Registry passed to Create (owned by the caller);
// GrpcServerMetrics borrows it and the Clock, and must outlive the grpc::Server whose factory it
// made. Thread-safety: everything is safe from any thread (gRPC runs hooks of one call on several
// threads). Failure: Create returns the Registry's error for a name already registered.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "common/metrics.h"

namespace dino::server {

class GrpcServerMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcServerMetrics>> Create(metrics::Registry* registry,
                                                                   Clock* clock);

  // A new interceptor factory for one ServerBuilder; it borrows this object.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewInterceptorFactory();

  // "/pkg.Service/Method" split into ("pkg.Service", "Method"); a malformed name gives
  // ("unknown", the whole name).
  static std::pair<std::string, std::string> SplitMethod(absl::string_view full_method);
  // Canonical name of a status code ("OK", "DEADLINE_EXCEEDED", ...); "UNKNOWN" when out of range.
  static const char* CodeName(grpc::StatusCode code);
  static const char* TypeName(grpc::experimental::ServerRpcInfo::Type type);

 private:
  class Factory;
  class CallInterceptor;

  explicit GrpcServerMetrics(Clock* clock) : clock_(clock) {}

  Clock* const clock_;
  metrics::Family<metrics::Counter>* started_ = nullptr;
  metrics::Family<metrics::Counter>* handled_ = nullptr;
  metrics::Family<metrics::Histogram>* handling_seconds_ = nullptr;
};

}  // namespace dino::server
