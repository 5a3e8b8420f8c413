// dino-coordinator: the control plane binary.
//
//   dino-coordinator --listen HOST:PORT --data-dir DIR [--metrics-port P] [--worker-timeout 15s]
//                    [--data-roots DIR[,DIR...]] [--max-message-bytes N] [--max-spec-bytes N]
//                    [--max-watch-streams N] [--max-watch-lag-events N]
//                    [--max-upload-chunk-bytes N]
//                    [--max-checkpoint-bytes N]
//                    [--tls-cert F --tls-key F [--tls-client-ca F]] [--insecure]
//                    [--auth-tokens F] [--max-queued-per-submitter N]
//                    [--max-submitter-priority N] [--max-reservation-hold D]
//                    [--http-listen [HOST:]PORT [--console-dir DIR]]
//
// --data-roots confines the data paths of submitted specs (common/path_confinement.h). Without
// it, paths are unconfined only when --listen is a loopback address (one log line says so); on any
// other address the flag is required ("--data-roots /" accepts every absolute path without
// "..", on purpose). The limits are described in server/limits.h.
//
// Plaintext gRPC is allowed on a loopback --listen only; elsewhere it needs TLS or --insecure.
// --http-listen (the JSON API and web console, server/http_server.h) takes the same --auth-tokens
// and the same rule: with --tls-cert/--tls-key (and --tls-client-ca) it serves HTTPS with those
// files on any address; without them plaintext, on loopback only unless --insecure.
//
// A bad flag, an unwritable data dir or a port in use each print one line on stderr and exit
// non-zero. SIGTERM or SIGINT shut down gracefully: stop accepting work, end the streams with
// UNAVAILABLE, wait for RPCs in flight, close the store.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "common/grpc_credentials.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_http.h"
#include "common/metrics_process.h"
#include "common/path_confinement.h"
#include "server/console_files.h"
#include "server/coordinator_server.h"
#include "server/http_server.h"
#include "server/limits.h"

namespace {

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "dino-coordinator: %s\n", message.c_str());
  return code;
}

// gRPC logs several lines of its own when a port cannot be bound; probing first keeps the
// operator's answer to one line. Only numeric IPv4 hosts (and "localhost", "0.0.0.0") are probed;
// anything else is left to gRPC.
std::string ProbeListenAddress(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return "--listen must be HOST:PORT, got \"" + listen + "\"";
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    return "--listen port must be 0..65535, got \"" + port_text + "\"";
  }
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) return "";
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string error;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    error = "cannot listen on " + listen + ": " + std::strerror(errno);
  }
  close(fd);
  return error;
}

// True for 127.0.0.0/8, ::1 and "localhost" (the host part of HOST:PORT).
bool IsLoopbackListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  in_addr address{};
  return inet_pton(AF_INET, host.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

bool ParseDurationFlag(const std::string& text, absl::Duration* out) {
  return absl::ParseDuration(text, out) && *out > absl::ZeroDuration();
}

}  // namespace

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts, so only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"dinotrain coordinator: job API, gang scheduler, checkpoint registry"};
  std::string listen = "127.0.0.1:50051";
  std::string data_dir;
  int metrics_port = 9464;
  std::string metrics_host = "0.0.0.0";
  std::string worker_timeout = "15s";
  std::string heartbeat_interval = "3s";
  std::string shutdown_grace = "10s";
  bool verbose = false;
  std::string data_roots;
  dino::server::ServerLimits limits;
  dino::ServerTlsOptions tls;  // common/grpc_credentials.h
  std::string auth_tokens;
  int max_queued_per_submitter = 0;
  int max_submitter_priority = dino::server::CoordinatorOptions().max_submitter_priority;
  std::string max_reservation_hold =
      absl::FormatDuration(dino::server::CoordinatorOptions().max_reservation_hold);
  app.add_option("--tls-cert", tls.cert_file,
                 "PEM certificate chain: serve gRPC over TLS and --http-listen over HTTPS");
  app.add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", tls.client_ca_file,
                 "PEM CA: require client certificates signed by it (mTLS), on gRPC and HTTPS");
  app.add_flag("--insecure", tls.insecure,
               "allow plaintext gRPC on a non-loopback --listen (logs a warning), and plaintext "
               "HTTP on a non-loopback --http-listen");
  app.add_option("--auth-tokens", auth_tokens,
                 "file of '<sha256 hex of token> <name> <role>' lines; enables authentication");
  app.add_option("--max-queued-per-submitter", max_queued_per_submitter,
                 "most QUEUED jobs one submitter may have; 0 = no limit")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-submitter-priority", max_submitter_priority,
                 "highest job priority a non-admin may set (default 0, the default priority)")
      ->check(CLI::Range(-1000, 1000));
  app.add_option("--max-reservation-hold", max_reservation_hold,
                 "longest a waiting gang holds the idle workers of its kind; then smaller jobs "
                 "get them for as long (default 10m)");
  app.add_option("--listen", listen, "host:port for gRPC (default 127.0.0.1:50051)");
  app.add_option("--data-dir", data_dir, "directory for coordinator.db and checkpoints")
      ->required();
  app.add_option("--metrics-port", metrics_port, "Prometheus /metrics port; 0 disables")
      ->check(CLI::Range(0, 65535));
  app.add_option("--metrics-host", metrics_host, "address for /metrics (default 0.0.0.0)");
  app.add_option("--worker-timeout", worker_timeout,
                 "a worker silent for longer is dead (default 15s)");
  app.add_option("--heartbeat-interval", heartbeat_interval,
                 "heartbeat period asked of workers (default 3s)");
  app.add_option("--shutdown-grace", shutdown_grace,
                 "how long SIGTERM waits for RPCs in flight (default 10s)");
  app.add_option("--data-roots", data_roots,
                 "DIR[,DIR...]: data paths in a job spec must resolve under one of these; "
                 "required unless --listen is a loopback address (then unconfined)");
  app.add_option("--max-message-bytes", limits.max_message_bytes,
                 "largest gRPC message received or sent (default 16 MiB)")
      ->check(CLI::Range(int64_t{4} << 20, int64_t{1} << 30));
  app.add_option("--max-spec-bytes", limits.max_spec_bytes,
                 "largest serialized JobSpec accepted by SubmitJob (default 64 KiB)")
      ->check(CLI::Range(int64_t{1} << 10, int64_t{16} << 20));
  app.add_option("--max-watch-streams", limits.max_watch_streams_per_client,
                 "open WatchJob streams per client (token name, else peer host; default 64)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--max-watch-lag-events", limits.max_watch_lag_events,
                 "events queued for a WatchJob client that reads too slowly; then its stream "
                 "ends UNAVAILABLE and it resumes with after_index (default 10000)")
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 24));
  app.add_option("--max-upload-chunk-bytes", limits.max_upload_chunk_bytes,
                 "largest data message of a checkpoint upload (default 4 MiB)")
      ->check(CLI::Range(int64_t{64} << 10, int64_t{1} << 30));
  app.add_option("--max-checkpoint-bytes", limits.max_checkpoint_bytes,
                 "largest checkpoint a worker may upload (default 16 GiB)")
      ->check(CLI::Range(int64_t{1} << 20, int64_t{1} << 50));
  std::string http_listen;
  std::string console_dir;
  app.add_option("--http-listen", http_listen,
                 "[HOST:]PORT for the JSON API (/api/v1/) and the web console (/console/); "
                 "PORT alone is loopback; off when not given. HTTPS with --tls-cert/--tls-key, "
                 "else plaintext, which needs --insecure off loopback");
  app.add_option("--console-dir", console_dir,
                 "the web console's files (default: installed next to the binary, else the "
                 "source tree's server/console)");
  app.add_flag("-v,--verbose", verbose, "debug logging");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(std::string(e.what()) + " (see --help)", 2);
  }
  if (verbose) dino::SetMinLogLevel(dino::LogLevel::kDebug);

  dino::server::ServerOptions options;
  options.listen = listen;
  options.data_dir = data_dir;
  options.tls = tls;
  // The TLS flags are checked here too, so that their error comes before the others'.
  if (auto credentials = dino::MakeServerCredentials(tls, listen); !credentials.ok()) {
    return Fail(std::string(credentials.status().message()), 2);
  }
  options.coordinator.max_queued_per_submitter = max_queued_per_submitter;
  options.coordinator.max_submitter_priority = max_submitter_priority;
  if (!ParseDurationFlag(max_reservation_hold, &options.coordinator.max_reservation_hold)) {
    return Fail("--max-reservation-hold must be a positive duration such as 10m, got \"" +
                    max_reservation_hold + "\"",
                2);
  }
  if (!auth_tokens.empty()) {
    absl::StatusOr<dino::server::TokenTable> tokens = dino::server::TokenTable::Load(auth_tokens);
    if (!tokens.ok()) return Fail(std::string(tokens.status().message()), 2);
    if (tokens->size() == 0) return Fail("--auth-tokens " + auth_tokens + " has no tokens", 2);
    options.auth_tokens = std::move(*tokens);
  }

  absl::Duration grace;
  if (!ParseDurationFlag(worker_timeout, &options.coordinator.worker_timeout)) {
    return Fail(
        "--worker-timeout must be a positive duration such as 15s, got \"" + worker_timeout + "\"",
        2);
  }
  if (!ParseDurationFlag(heartbeat_interval, &options.coordinator.heartbeat_interval)) {
    return Fail("--heartbeat-interval must be a positive duration such as 3s, got \"" +
                    heartbeat_interval + "\"",
                2);
  }
  if (!ParseDurationFlag(shutdown_grace, &grace)) {
    return Fail(
        "--shutdown-grace must be a positive duration such as 10s, got \"" + shutdown_grace + "\"",
        2);
  }
  if (options.listen.empty()) return Fail("--listen must not be empty", 2);
  if (!data_roots.empty()) {
    absl::StatusOr<dino::PathConfinement> roots = dino::PathConfinement::FromFlag(data_roots);
    if (!roots.ok()) return Fail("--data-roots: " + std::string(roots.status().message()), 2);
    limits.data_roots = *std::move(roots);
  } else if (!IsLoopbackListen(options.listen)) {
    return Fail("--data-roots DIR[,DIR...] is required when --listen is not a loopback address (" +
                    options.listen + "); \"--data-roots /\" allows every absolute path",
                2);
  }
  if (limits.max_upload_chunk_bytes + (int64_t{64} << 10) > limits.max_message_bytes) {
    return Fail("--max-upload-chunk-bytes must be at least 64 KiB below --max-message-bytes", 2);
  }
  options.limits = limits;
  if (std::string error = ProbeListenAddress(options.listen); !error.empty()) return Fail(error);

  dino::metrics::Registry registry;
  (void)dino::metrics::RegisterProcessMetrics(&registry);
  auto server = dino::server::CoordinatorServer::Start(options, dino::RealClock::Get(),
                                                       dino::DefaultFileSystem(), &registry);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  // Logged once serving, so that a failed start stays one line on stderr.
  if (options.limits.data_roots.confined()) {
    DINO_LOG(INFO) << "data paths confined to " << options.limits.data_roots.RootsText();
  } else {
    DINO_LOG(INFO) << "no --data-roots on loopback " << options.listen
                   << ": data paths in job specs are not confined";
  }
  dino::metrics::MetricsHttpServer metrics_server(&registry);
  if (metrics_port > 0) {
    absl::Status status = metrics_server.Start(metrics_host, metrics_port);
    if (!status.ok()) {
      (*server)->Shutdown(absl::ZeroDuration());
      return Fail(std::string(status.message()));
    }
  }

  std::unique_ptr<dino::server::HttpServer> http_server;
  if (!http_listen.empty()) {
    dino::server::HttpServerOptions http;
    http.listen = http_listen;
    http.tls_cert_file = tls.cert_file;
    http.tls_key_file = tls.key_file;
    http.tls_client_ca_file = tls.client_ca_file;
    http.insecure = tls.insecure;
    http.limits = options.limits;
    http.console_dir = dino::server::FindConsoleDir(console_dir, argv[0]);
    auto started = dino::server::HttpServer::Start(
        http, (*server)->coordinator(),
        options.auth_tokens.has_value() ? &*options.auth_tokens : nullptr);
    if (!started.ok()) {
      (*server)->Shutdown(absl::ZeroDuration());
      return Fail(std::string(started.status().message()));
    }
    http_server = *std::move(started);
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  DINO_LOG(INFO) << "signal " << signal_number << ": shutting down";
  if (http_server != nullptr) http_server->Stop();  // Ends its event streams first.
  (*server)->Shutdown(grace);
  metrics_server.Stop();
  return 0;
}
