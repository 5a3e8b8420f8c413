#include "server/coordinator_server.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/dir_lock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/auth_gate.h"

namespace dino::server {

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const ServerOptions& options, Clock* clock, FileSystem* fs, metrics::Registry* registry) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir must be set");
  absl::Status writable = fs->CreateDirs(options.data_dir);
  if (writable.ok()) {
    writable = WriteFileAtomically(fs, options.data_dir + "/.writable", "ok\n");
  }
  if (!writable.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", options.data_dir, " is not writable: ", writable.message()));
  }
  // Before the store is opened or a checkpoint file is looked at: a second coordinator on this
  // data dir stops here, and the first one's files are left alone.
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<DirLock> data_dir_lock,
                        DirLock::Acquire(options.data_dir, "coordinator.lock", "dino-coordinator"));
  auto server = std::unique_ptr<CoordinatorServer>(new CoordinatorServer());
  server->data_dir_lock_ = std::move(data_dir_lock);
  DINO_ASSIGN_OR_RETURN(server->store_, OpenSqliteStore(options.data_dir + "/coordinator.db"));
  if (registry != nullptr) {
    DINO_ASSIGN_OR_RETURN(server->metrics_, CoordinatorMetrics::Create(registry));
    DINO_ASSIGN_OR_RETURN(server->grpc_metrics_, GrpcServerMetrics::Create(registry, clock));
    DINO_ASSIGN_OR_RETURN(server->store_,
                          WithStoreMetrics(std::move(server->store_), *server->metrics_, clock));
  }
  server->checkpoints_ = std::make_unique<CheckpointRegistry>(server->store_.get(), fs,
                                                              options.data_dir + "/checkpoints");
  server->coordinator_ =
      std::make_unique<Coordinator>(server->store_.get(), server->checkpoints_.get(), clock,
                                    options.coordinator, server->metrics_.get());
  DINO_RETURN_IF_ERROR(server->coordinator_->Recover());
  if (options.auth_tokens.has_value()) {
    server->auth_tokens_ = std::make_unique<TokenTable>(*options.auth_tokens);
    server->auth_calls_ = std::make_unique<AuthCalls>();
  }
  server->job_service_ = std::make_unique<JobServiceImpl>(
      server->coordinator_.get(), options.limits, server->auth_calls_.get());
  server->worker_service_ = std::make_unique<WorkerServiceImpl>(
      server->coordinator_.get(), options.limits, server->auth_calls_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.limits.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.limits.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (!options.listen.empty()) {
    DINO_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                          MakeServerCredentials(options.tls, options.listen));
    builder.AddListeningPort(options.listen, credentials, &server->port_);
    if (options.tls.cert_file.empty() && !IsLoopbackAddress(options.listen)) {
      DINO_LOG(WARNING) << "--insecure: serving plaintext gRPC on " << options.listen
                        << "; tokens and data cross the network unencrypted";
    }
  }
  if (server->auth_calls_ != nullptr) {
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    server->gated_job_service_ =
        NewAuthGatedService(server->job_service_.get(),
                            pool->FindServiceByName(dino::v1::JobService::service_full_name()),
                            server->auth_calls_.get());
    server->gated_worker_service_ =
        NewAuthGatedService(server->worker_service_.get(),
                            pool->FindServiceByName(dino::v1::WorkerService::service_full_name()),
                            server->auth_calls_.get());
    builder.RegisterService(server->gated_job_service_.get());
    builder.RegisterService(server->gated_worker_service_.get());
  } else {
    builder.RegisterService(server->job_service_.get());
    builder.RegisterService(server->worker_service_.get());
  }
  // Every interceptor sees every call, whatever the order (none can end a call early), but the
  // sending-side hooks run in list order: auth comes first so that the denial it writes into the
  // status (PRE_SEND_STATUS) is the code the metrics interceptor then counts.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  if (server->auth_calls_ != nullptr) {
    Coordinator* coordinator = server->coordinator_.get();
    interceptors.push_back(NewAuthInterceptorFactory(
        server->auth_tokens_.get(), server->auth_calls_.get(),
        [coordinator](const std::string& job_id) -> absl::StatusOr<std::string> {
          absl::StatusOr<dino::v1::Job> job = coordinator->GetJob(job_id);
          if (!job.ok()) return job.status();
          return job->submitter();
        }));
  }
  if (server->grpc_metrics_ != nullptr) {
    interceptors.push_back(server->grpc_metrics_->NewInterceptorFactory());
  }
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || (!options.listen.empty() && server->port_ == 0)) {
    server->server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid)"));
  }
  if (auto* health = server->server_->GetHealthCheckService(); health != nullptr) {
    health->SetServingStatus(true);
  }
  if (options.tick_interval > absl::ZeroDuration()) {
    CoordinatorServer* self = server.get();
    const absl::Duration interval = options.tick_interval;
    server->ticker_ = std::thread([self, interval] {
      while (!self->stop_ticker_.WaitForNotificationWithTimeout(interval)) {
        self->coordinator_->Tick();
      }
    });
  }
  DINO_LOG(INFO) << "coordinator serving on "
                 << (options.listen.empty()
                         ? std::string("in-process only")
                         : absl::StrCat(options.listen, " (port ", server->port_, ")"))
                 << ", data dir " << options.data_dir;
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

void CoordinatorServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (ticker_.joinable()) {
    stop_ticker_.Notify();
    ticker_.join();
  }
  if (coordinator_ != nullptr) coordinator_->Shutdown();
  if (server_ != nullptr) {
    if (auto* health = server_->GetHealthCheckService(); health != nullptr) {
      health->SetServingStatus(false);
    }
    server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
    server_->Wait();
  }
  server_.reset();
  DINO_LOG(INFO) << "coordinator stopped";
}

std::shared_ptr<grpc::Channel> CoordinatorServer::InProcessChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  return server_->InProcessChannel(args);
}

}  // namespace dino::server
