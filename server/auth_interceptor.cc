#include "server/auth_interceptor.h"

#include <grpcpp/server_context.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "dino/v1/coordinator.pb.h"

namespace dino::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr absl::string_view kJobService = "/dino.v1.JobService/";
constexpr absl::string_view kWorkerService = "/dino.v1.WorkerService/";
constexpr absl::string_view kCancelJob = "/dino.v1.JobService/CancelJob";

bool IsViewerMethod(absl::string_view method) {
  for (absl::string_view name : {"GetJob", "ListJobs", "WatchJob", "ListCheckpoints",
                                 "DownloadCheckpoint", "GetJobMetrics", "ListWorkers"}) {
    if (method == absl::StrCat(kJobService, name)) return true;
  }
  return false;
}

bool RoleMayCall(Role role, absl::string_view method) {
  switch (role) {
    case Role::kAdmin:
      return true;
    case Role::kWorker:
      return absl::StartsWith(method, kWorkerService);
    case Role::kSubmitter:
      if (method == absl::StrCat(kJobService, "SubmitJob") || method == kCancelJob) return true;
      return IsViewerMethod(method);
    case Role::kViewer:
      return IsViewerMethod(method);
  }
  return false;
}

// The token of "Bearer <token>" (scheme case-insensitive), or "" when the value has another form.
absl::string_view BearerToken(absl::string_view value) {
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return "";
  }
  return absl::StripAsciiWhitespace(value.substr(kScheme.size()));
}

class AuthInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(grpc::experimental::ServerRpcInfo* info, const TokenTable* tokens,
                  AuthCalls* calls, const JobSubmitterLookup* job_submitter)
      : context_(info->server_context()),
        method_(info->method()),
        tokens_(tokens),
        calls_(calls),
        job_submitter_(job_submitter) {
    calls_->Set(context_, std::nullopt,
                grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no request metadata yet"));
  }
  ~AuthInterceptor() override { calls_->Erase(context_); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      Authenticate(*methods->GetRecvInitialMetadata());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        method_ == kCancelJob && caller_.has_value() && caller_->role == Role::kSubmitter) {
      CheckOwnership(static_cast<const dino::v1::CancelJobRequest*>(methods->GetRecvMessage()));
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status decision = calls_->Decision(context_);
      if (!decision.ok()) methods->ModifySendStatus(decision);
    }
    methods->Proceed();
  }

 private:
  void Authenticate(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
    if (IsOpenMethod(method_)) {
      calls_->Set(context_, std::nullopt, grpc::Status::OK);
      return;
    }
    auto it = metadata.find("authorization");
    if (it == metadata.end()) {
      Deny(grpc::StatusCode::UNAUTHENTICATED, "missing \"authorization: Bearer <token>\"");
      return;
    }
    const absl::string_view token =
        BearerToken(absl::string_view(it->second.data(), it->second.size()));
    if (token.empty()) {
      Deny(grpc::StatusCode::UNAUTHENTICATED, "authorization must be \"Bearer <token>\"");
      return;
    }
    caller_ = tokens_->Authenticate(token);
    if (!caller_.has_value()) {
      Deny(grpc::StatusCode::UNAUTHENTICATED, "unknown token");
      return;
    }
    absl::Status allowed = AuthorizeCall(caller_->role, method_);
    if (!allowed.ok()) {
      Deny(grpc::StatusCode::PERMISSION_DENIED, std::string(allowed.message()));
      return;
    }
    calls_->Set(context_, caller_, grpc::Status::OK);
  }

  void CheckOwnership(const dino::v1::CancelJobRequest* request) {
    if (request == nullptr || !calls_->Decision(context_).ok()) return;
    absl::StatusOr<std::string> owner = (*job_submitter_)(request->job_id());
    if (absl::IsNotFound(owner.status())) return;  // The handler answers NOT_FOUND.
    if (!owner.ok()) {
      Deny(static_cast<grpc::StatusCode>(owner.status().code()),
           std::string(owner.status().message()));
      return;
    }
    if (*owner != caller_->name) {
      Deny(grpc::StatusCode::PERMISSION_DENIED,
           absl::StrCat("role submitter may cancel only its own jobs; ", request->job_id(),
                        " was submitted by \"", *owner, "\""));
    }
  }

  void Deny(grpc::StatusCode code, const std::string& message) {
    if (code == grpc::StatusCode::PERMISSION_DENIED) {
      DINO_LOG(WARNING) << "permission denied: \"" << caller_->name << "\" ("
                        << RoleName(caller_->role) << ") called " << method_ << " from "
                        << context_->peer() << ": " << message;
    } else {
      DINO_LOG(INFO) << "refused call to " << method_ << " from " << context_->peer() << ": "
                     << message;
    }
    calls_->Set(context_, caller_, grpc::Status(code, message));
  }

  grpc::ServerContextBase* const context_;
  const std::string method_;
  const TokenTable* const tokens_;
  AuthCalls* const calls_;
  const JobSubmitterLookup* const job_submitter_;
  std::optional<Principal> caller_;  // Set once the token is known.
};

class AuthInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AuthInterceptorFactory(const TokenTable* tokens, AuthCalls* calls,
                         JobSubmitterLookup job_submitter)
      : tokens_(tokens), calls_(calls), job_submitter_(std::move(job_submitter)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AuthInterceptor(info, tokens_, calls_, &job_submitter_);
  }

 private:
  const TokenTable* const tokens_;
  AuthCalls* const calls_;
  const JobSubmitterLookup job_submitter_;
};

}  // namespace

bool IsOpenMethod(absl::string_view method) {
  return absl::StartsWith(method, "/grpc.health.v1.Health/") ||
         absl::StartsWith(method, "/grpc.reflection.v1alpha.ServerReflection/") ||
         absl::StartsWith(method, "/grpc.reflection.v1.ServerReflection/");
}

absl::Status AuthorizeCall(Role role, absl::string_view method) {
  if (IsOpenMethod(method) || RoleMayCall(role, method)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("role ", RoleName(role), " may not call ", method));
}

std::string CallerName(const AuthCalls* calls, const grpc::ServerContextBase* context) {
  if (calls == nullptr) return kAnonymousSubmitter;
  std::optional<Principal> caller = calls->Caller(context);
  return caller.has_value() ? caller->name : kAnonymousSubmitter;
}

std::optional<Principal> AuthCalls::Caller(const grpc::ServerContextBase* context) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(context);
  if (it == calls_.end() || !it->second.decision.ok()) return std::nullopt;
  return it->second.caller;
}

grpc::Status AuthCalls::Decision(const grpc::ServerContextBase* context) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(context);
  if (it == calls_.end()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "no authentication decision for this call");
  }
  return it->second.decision;
}

void AuthCalls::Set(const grpc::ServerContextBase* context, std::optional<Principal> caller,
                    grpc::Status decision) {
  absl::MutexLock lock(&mu_);
  calls_[context] = Entry{std::move(caller), std::move(decision)};
}

void AuthCalls::Erase(const grpc::ServerContextBase* context) {
  absl::MutexLock lock(&mu_);
  calls_.erase(context);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewAuthInterceptorFactory(
    const TokenTable* tokens, AuthCalls* calls, JobSubmitterLookup job_submitter) {
  return std::make_unique<AuthInterceptorFactory>(tokens, calls, std::move(job_submitter));
}

}  // namespace dino::server
