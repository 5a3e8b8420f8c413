#include "server/auth_gate.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/server_context.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/logging.h"

namespace dino::server {
namespace {

// grpc::Service::GetHandler is protected; a pointer to it formed through a derived class is the
// standard way to reach it for another service object.
struct HandlerAccess : grpc::Service {
  static grpc::internal::MethodHandler* Get(grpc::Service* service, int index) {
    return (service->*(&HandlerAccess::GetHandler))(index);
  }
};

class GateHandler final : public grpc::internal::MethodHandler {
 public:
  GateHandler(grpc::internal::MethodHandler* inner, const AuthCalls* calls)
      : inner_(inner), calls_(calls) {}

  void RunHandler(const HandlerParameter& param) override {
    grpc::Status decision = calls_->Decision(param.server_context);
    if (decision.ok() || !param.status.ok()) {
      inner_->RunHandler(param);
      return;
    }
    // A failed request status makes the generated callback handler finish the call without
    // calling the service (its "deserialization failed" path).
    inner_->RunHandler(HandlerParameter(param.call, param.server_context, param.request, decision,
                                        param.internal_data, param.call_requester));
  }

  void* Deserialize(grpc_call* call, grpc_byte_buffer* request, grpc::Status* status,
                    void** handler_data) override {
    return inner_->Deserialize(call, request, status, handler_data);
  }

 private:
  grpc::internal::MethodHandler* const inner_;
  const AuthCalls* const calls_;
};

grpc::internal::RpcMethod::RpcType TypeOf(const google::protobuf::MethodDescriptor& method) {
  if (method.client_streaming() && method.server_streaming()) {
    return grpc::internal::RpcMethod::BIDI_STREAMING;
  }
  if (method.client_streaming()) return grpc::internal::RpcMethod::CLIENT_STREAMING;
  if (method.server_streaming()) return grpc::internal::RpcMethod::SERVER_STREAMING;
  return grpc::internal::RpcMethod::NORMAL_RPC;
}

class GatedService final : public grpc::Service {
 public:
  GatedService(grpc::Service* inner, const google::protobuf::ServiceDescriptor* descriptor,
               const AuthCalls* calls) {
    // RpcMethod keeps the name's pointer: every name is stored before any is used.
    names_.reserve(static_cast<size_t>(descriptor->method_count()));
    for (int i = 0; i < descriptor->method_count(); ++i) {
      names_.push_back("/" + descriptor->full_name() + "/" + descriptor->method(i)->name());
    }
    for (int i = 0; i < descriptor->method_count(); ++i) {
      grpc::internal::MethodHandler* handler = HandlerAccess::Get(inner, i);
      if (handler == nullptr) {
        DINO_LOG(ERROR) << names_[static_cast<size_t>(i)] << " is not a callback method";
        std::abort();
      }
      AddMethod(new grpc::internal::RpcServiceMethod(names_[static_cast<size_t>(i)].c_str(),
                                                     TypeOf(*descriptor->method(i)), nullptr));
      MarkMethodCallback(i, new GateHandler(handler, calls));
    }
  }

 private:
  std::vector<std::string> names_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewAuthGatedService(
    grpc::Service* inner, const google::protobuf::ServiceDescriptor* descriptor,
    const AuthCalls* calls) {
  return std::make_unique<GatedService>(inner, descriptor, calls);
}

}  // namespace dino::server
