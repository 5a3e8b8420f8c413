#include "server/grpc_server_metrics.h"

#include <atomic>
#include <utility>

#include "common/status_macros.h"

namespace dino::server {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

// One per call, created and destroyed by gRPC. The status hook and the destructor may run on
// different threads, hence the atomic.
class GrpcServerMetrics::CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(GrpcServerMetrics* owner, ServerRpcInfo* info) : owner_(owner) {
    std::tie(service_, method_) = SplitMethod(info->method() == nullptr ? "" : info->method());
    type_ = TypeName(info->type());
    start_ = owner_->clock_->Now();
    owner_->started_->WithLabels({service_, method_, type_})->Increment();
  }

  ~CallInterceptor() override {
    if (!handled_.load()) Finish(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finish(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Finish(grpc::StatusCode code) {
    if (handled_.exchange(true)) return;
    owner_->handled_->WithLabels({service_, method_, CodeName(code)})->Increment();
    owner_->handling_seconds_->WithLabels({service_, method_, type_})
        ->Observe(absl::ToDoubleSeconds(owner_->clock_->Now() - start_));
  }

  GrpcServerMetrics* const owner_;
  std::string service_;
  std::string method_;
  std::string type_;
  absl::Time start_;
  std::atomic<bool> handled_{false};
};

class GrpcServerMetrics::Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(GrpcServerMetrics* owner) : owner_(owner) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new CallInterceptor(owner_, info);
  }

 private:
  GrpcServerMetrics* const owner_;
};

absl::StatusOr<std::unique_ptr<GrpcServerMetrics>> GrpcServerMetrics::Create(
    metrics::Registry* registry, Clock* clock) {
  auto m = std::unique_ptr<GrpcServerMetrics>(new GrpcServerMetrics(clock));
  DINO_ASSIGN_OR_RETURN(
      m->started_, registry->AddCounter("grpc_server_started_total", "RPCs started on the server.",
                                        {"grpc_service", "grpc_method", "grpc_type"}));
  DINO_ASSIGN_OR_RETURN(m->handled_,
                        registry->AddCounter("grpc_server_handled_total",
                                             "RPCs completed on the server, by status code.",
                                             {"grpc_service", "grpc_method", "grpc_code"}));
  // Unary calls take milliseconds; Connect and WatchJob streams live for hours.
  std::vector<double> buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  0.25, 0.5,
                                 1,      2.5,   5,      10,    30,   60,    300,  1800, 7200};
  DINO_ASSIGN_OR_RETURN(
      m->handling_seconds_,
      registry->AddHistogram("grpc_server_handling_seconds",
                             "RPC handling time on the server until the status is sent.",
                             {"grpc_service", "grpc_method", "grpc_type"}, std::move(buckets)));
  return m;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcServerMetrics::NewInterceptorFactory() {
  return std::make_unique<Factory>(this);
}

std::pair<std::string, std::string> GrpcServerMetrics::SplitMethod(absl::string_view full_method) {
  if (full_method.size() > 1 && full_method[0] == '/') {
    const size_t slash = full_method.find('/', 1);
    if (slash != absl::string_view::npos && slash > 1 && slash + 1 < full_method.size()) {
      return {std::string(full_method.substr(1, slash - 1)),
              std::string(full_method.substr(slash + 1))};
    }
  }
  return {"unknown", std::string(full_method)};
}

const char* GrpcServerMetrics::CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) {
    return "UNKNOWN";
  }
  return kNames[index];
}

const char* GrpcServerMetrics::TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

}  // namespace dino::server
