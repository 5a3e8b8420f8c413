// Authentication and role checks for the coordinator's gRPC server, in one server interceptor.
//
// Every call carries `authorization: Bearer <token>`; the token is looked up in the TokenTable
// (--auth-tokens). What each role may call (AuthorizeCall):
//   viewer     JobService GetJob, ListJobs, WatchJob, ListCheckpoints, DownloadCheckpoint,
//              GetJobMetrics, ListWorkers
//   submitter  viewer plus SubmitJob, and CancelJob of the jobs it submitted itself
//   admin      everything
//   worker     WorkerService only
// grpc.health.v1.Health and server reflection (the schema is public) stay open without a token.
// Any other method needs admin, so a service added later is closed until it is listed here.
// A missing, malformed or unknown token is UNAUTHENTICATED; a known token with the wrong role is
// PERMISSION_DENIED, and the denial is logged (name, role, method, peer).
//
// How a denial stops a call: gRPC 1.51 server interceptors cannot finish a call themselves
// (grpc/grpc#24017), so the decision travels in `AuthCalls`, keyed by the call's ServerContext:
//   1. the interceptor records a decision for every call when it is created (UNAUTHENTICATED until
//      the metadata arrives), decides on POST_RECV_INITIAL_METADATA (and, for a submitter's
//      CancelJob, on POST_RECV_MESSAGE, where the job id is known), and erases it when the call
//      ends;
//   2. the services are registered through NewAuthGatedService (auth_gate.h), whose handlers hand a
//      denied call to gRPC's own "request failed" path, so the service's handler never runs;
//   3. on PRE_SEND_STATUS the interceptor replaces that path's status with the denial.
// Handlers read the caller's identity with AuthCalls::Caller(context) (SubmitJob records it as the
// job's submitter).
//
// The CancelJob ownership check here is only an early denial: a job id that does not exist yet
// passes it (the ids are sequential), so JobService passes the caller on and
// Coordinator::CancelJob checks ownership again in the critical section of the cancel.
//
// Ownership: the factory borrows the TokenTable and the AuthCalls, which must outlive the server.
// Thread-safety: AuthCalls is internally locked; interceptors are per call. Failure: as above; the
// owner lookup's errors other than NOT_FOUND deny the call with their own status.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/auth_tokens.h"

namespace grpc {
class ServerContextBase;
}

namespace dino::server {

// The submitter recorded when auth is off.
inline constexpr char kAnonymousSubmitter[] = "anonymous";

// The role rule alone, for a fully qualified method ("/dino.v1.JobService/SubmitJob").
// CancelJob for a submitter returns OK here; ownership is checked separately. Returns OK or
// PERMISSION_DENIED naming the role and the method.
absl::Status AuthorizeCall(Role role, absl::string_view method);
// True for methods that need no token (health checks, reflection).
bool IsOpenMethod(absl::string_view method);

// Per-call authentication decisions, keyed by the call's ServerContext.
class AuthCalls {
 public:
  // The authenticated caller, or nullopt (no decision, an open method, or not authenticated).
  std::optional<Principal> Caller(const grpc::ServerContextBase* context) const;
  // OK when the call may reach its handler. A context without a decision is denied (fail closed).
  grpc::Status Decision(const grpc::ServerContextBase* context) const;

  void Set(const grpc::ServerContextBase* context, std::optional<Principal> caller,
           grpc::Status decision);
  void Erase(const grpc::ServerContextBase* context);

 private:
  struct Entry {
    std::optional<Principal> caller;
    grpc::Status decision;
  };
  mutable absl::Mutex mu_;
  absl::flat_hash_map<const grpc::ServerContextBase*, Entry> calls_ ABSL_GUARDED_BY(mu_);
};

// The name of the call's authenticated caller: kAnonymousSubmitter when `calls` is null (auth off)
// or the call has no authenticated caller.
std::string CallerName(const AuthCalls* calls, const grpc::ServerContextBase* context);

// The submitter of a job (for CancelJob by a submitter); NOT_FOUND for an unknown job.
using JobSubmitterLookup = std::function<absl::StatusOr<std::string>(const std::string& job_id)>;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewAuthInterceptorFactory(
    const TokenTable* tokens, AuthCalls* calls, JobSubmitterLookup job_submitter);

}  // namespace dino::server
