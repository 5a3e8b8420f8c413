// CoordinatorServer: everything dino-coordinator runs, assembled: the SQLite store under the data
// dir, the checkpoint registry, the Coordinator, the JobService and WorkerService handlers, the
// gRPC health service and server reflection, and a ticker that calls Coordinator::Tick.
//
// Message size limits: 16 MiB per message in both directions (checkpoints travel in 1 MiB
// chunks). The listening port is bound exclusively (no SO_REUSEPORT), so a second coordinator on
// the same port fails to start instead of sharing it.
//
// Ownership: owns all of the above; borrows the Clock, FileSystem and metrics Registry (may be
// null), which must outlive it.
// Thread-safety: Start/Shutdown from one thread; the accessors are safe from any thread.
// Failure: Start returns FAILED_PRECONDITION for a data dir that cannot be created or written,
// UNAVAILABLE for an address that cannot be bound (in use or malformed), store errors as they
// come. Each message is one line meant for the operator.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/dir_lock.h"
#include "common/file_system.h"
#include "common/grpc_credentials.h"
#include "common/metrics.h"
#include "server/auth_interceptor.h"
#include "server/auth_tokens.h"
#include "server/checkpoint_registry.h"
#include "server/coordinator.h"
#include "server/coordinator_metrics.h"
#include "server/grpc_server_metrics.h"
#include "server/job_service.h"
#include "server/limits.h"
#include "server/store.h"
#include "server/worker_service.h"

namespace dino::server {

inline constexpr int kMaxMessageBytes = 16 << 20;

struct ServerOptions {
  // host:port to listen on; "" serves only the in-process channel (tests).
  std::string listen = "127.0.0.1:50051";
  std::string data_dir;  // Required: coordinator.db and checkpoints/ live here.
  CoordinatorOptions coordinator;
  // How often Tick() runs; zero disables the ticker (tests call Tick themselves).
  absl::Duration tick_interval = absl::Seconds(1);
  // Message sizes, spec size, data roots, watch streams per client, upload sizes
  // (server/limits.h). limits.max_message_bytes replaces kMaxMessageBytes on the server side.
  ServerLimits limits;
  // Transport security of `listen` (common/grpc_credentials.h): TLS/mTLS, or plaintext only on a
  // loopback address unless tls.insecure. Start fails with the credentials' message otherwise.
  ServerTlsOptions tls;
  // Bearer tokens and roles (--auth-tokens, server/auth_interceptor.h). Unset: auth is off and
  // every job's submitter is "anonymous".
  std::optional<TokenTable> auth_tokens;
};

class CoordinatorServer {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(const ServerOptions& options,
                                                                  Clock* clock, FileSystem* fs,
                                                                  metrics::Registry* registry);
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  // Stops accepting work, ends worker streams and watches with UNAVAILABLE, waits up to `grace`
  // for RPCs in flight, then closes the store. Idempotent.
  void Shutdown(absl::Duration grace);

  int port() const { return port_; }
  std::shared_ptr<grpc::Channel> InProcessChannel();
  Coordinator* coordinator() { return coordinator_.get(); }

 private:
  CoordinatorServer() = default;

  // Held from Start to destruction (declared first, so it is released last): one coordinator
  // per data dir.
  std::unique_ptr<DirLock> data_dir_lock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CheckpointRegistry> checkpoints_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<GrpcServerMetrics> grpc_metrics_;  // Outlives server_ (declared before it).
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<TokenTable> auth_tokens_;  // Null when auth is off.
  std::unique_ptr<AuthCalls> auth_calls_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  // With auth: the services as registered, gated by auth_calls_ (server/auth_gate.h).
  std::unique_ptr<grpc::Service> gated_job_service_;
  std::unique_ptr<grpc::Service> gated_worker_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Notification stop_ticker_;
  std::thread ticker_;
  bool shut_down_ = false;
};

}  // namespace dino::server
