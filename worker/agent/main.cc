// dino-worker: joins a dinotrain coordinator and trains the job ranks it is assigned.
//
//   dino-worker --coordinator HOST:PORT --device cpu|cuda[:N] --threads N --rendezvous-port P
//               [--metrics-port P] [--name NAME] [--work-dir DIR] [--advertise-host HOST]
//               [--token-file F] [--tls-ca F [--tls-cert F --tls-key F]] [--insecure]
//
// --token-file holds the worker's bearer token (a `worker` role in the coordinator's
// --auth-tokens); --tls-ca verifies a coordinator that serves TLS, --tls-cert/--tls-key are the
// client certificate when it requires mTLS. The token is sent over plaintext only to a loopback
// coordinator; elsewhere it needs --tls-ca, or --insecure to send it unencrypted anyway
// (common/token_transport.h), else the worker exits 2 at startup.
//
// --device cuda[:N] needs a CUDA build (DINO_WITH_CUDA) and device N visible to LibTorch; without
// them the worker exits 2 at startup, before it registers, with one line saying what it found.
//
// Several workers can run on one machine with different rendezvous ports (and work dirs). The
// worker keeps retrying an unreachable coordinator with backoff.
//
// SIGTERM or SIGINT leaves gracefully (what Kubernetes and `docker stop` send): the current step
// finishes, rank 0 uploads the checkpoint that was due, the attempt is reported PREEMPTED (the
// coordinator re-queues the job without using up max_restarts), and the process exits 0. A second
// signal aborts at once.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_system.h"
#include "common/grpc_credentials.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_http.h"
#include "common/metrics_process.h"
#include "common/path_confinement.h"
#include "common/token_transport.h"
#include "worker/agent/agent.h"
#include "worker/agent/coordinator_link.h"
#include "worker/agent/device_check.h"
#include "worker/agent/worker_metrics.h"
#include "worker/dino/blas_kernels.h"

int main(int argc, char** argv) {
  // Signals are taken by a watcher thread, which leaves or stops the agent cleanly. Blocked
  // first, before anything (gRPC credentials, the metrics server) starts a thread that would
  // otherwise inherit an open mask and let SIGTERM kill the process.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // gRPC's synchronous client notices that a lost connection can be made again only when some
  // call polls the channel, or on its backup poll (every 5 s by default): after a coordinator
  // restart that could keep a worker away for 5-15 s, longer than a short --worker-timeout. Poll
  // every 250 ms instead, unless the operator set it. Before gRPC starts.
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "250", /*overwrite=*/0);

  CLI::App app{"dino-worker: trains DINO job ranks assigned by a dinotrain coordinator"};
  dino::agent::AgentOptions options;
  dino::agent::LinkSecurity security;
  int metrics_port = 0;
  int64_t timeout_seconds = 60;
  options.runner.work_dir = "dino-worker-data";
  app.add_option("--coordinator", options.coordinator, "Coordinator address HOST:PORT")
      ->capture_default_str();
  // Checked after parsing (CheckWorkerDevice), so that a malformed value and an unusable device
  // get the same one-line message and exit code.
  app.add_option("--device", options.runner.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--threads", options.runner.threads, "Intra-op threads; 0 = all cores")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_option("--rendezvous-port", options.runner.rendezvous_port,
                 "Port of this worker's c10d store when it is rank 0")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--metrics-port", metrics_port, "Serve /metrics here; 0 = off")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--name", options.name, "Worker name (default hostname:rendezvous-port)");
  app.add_option("--work-dir", options.runner.work_dir,
                 "Checkpoints, cache and exports of this worker")
      ->capture_default_str();
  app.add_option("--advertise-host", options.advertise_host,
                 "Host name or address peers use to reach this worker (default: hostname)");
  app.add_option("--collective-timeout", timeout_seconds,
                 "Seconds before a hung collective aborts the attempt")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  std::string data_roots;
  app.add_option("--data-roots", data_roots,
                 "DIR[,DIR...]: refuse (BAD_DATASET) job data paths outside these; "
                 "default: not confined here (the coordinator's --data-roots still apply)");
  std::string token_file;
  dino::ChannelTlsOptions tls;
  app.add_option("--token-file", token_file, "File holding this worker's bearer token");
  app.add_option("--tls-ca", tls.ca_file, "PEM CA that signed the coordinator's certificate");
  app.add_option("--tls-cert", tls.cert_file, "PEM client certificate (coordinator with mTLS)");
  app.add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert");
  bool insecure = false;
  app.add_flag("--insecure", insecure,
               "Send the token over plaintext gRPC to a non-loopback coordinator");
  app.footer(
      "Example: dino-worker --coordinator localhost:50051 --device cpu --threads 2 "
      "--rendezvous-port 29500");
  CLI11_PARSE(app, argc, argv);
  // Before anything connects: a worker that registered as cuda:N without a usable device would be
  // given every CUDA job and fail each attempt.
  if (absl::Status device = dino::agent::CheckWorkerDevice(options.runner.device); !device.ok()) {
    std::cerr << "dino-worker: " << device.message() << "\n";
    return 2;
  }
  options.runner.collective_timeout = absl::Seconds(timeout_seconds);
  options.runner.bind_host = options.advertise_host;
  if (!data_roots.empty()) {
    absl::StatusOr<dino::PathConfinement> roots = dino::PathConfinement::FromFlag(data_roots);
    if (!roots.ok()) {
      std::cerr << "dino-worker: --data-roots: " << roots.status().message() << "\n";
      return 2;
    }
    options.runner.data_roots = *std::move(roots);
  }
  if (!token_file.empty()) {
    absl::StatusOr<std::string> token = dino::ReadSmallFile(token_file, "--token-file");
    if (!token.ok()) {
      std::cerr << "dino-worker: " << token.status().message() << "\n";
      return 2;
    }
    security.token = std::string(absl::StripAsciiWhitespace(*token));
  }
  if (absl::Status transport = dino::CheckTokenTransport(
          options.coordinator, !security.token.empty(), !tls.ca_file.empty(), insecure);
      !transport.ok()) {
    std::cerr << "dino-worker: " << transport.message() << "\n";
    return 2;
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      dino::MakeChannelCredentials(tls);
  if (!credentials.ok()) {
    std::cerr << "dino-worker: " << credentials.status().message() << "\n";
    return 2;
  }
  security.credentials = *credentials;

  dino::metrics::Registry registry;
  std::unique_ptr<dino::metrics::MetricsHttpServer> metrics;
  std::unique_ptr<dino::agent::WorkerMetrics> worker_metrics;
  if (metrics_port > 0) {
    absl::Status s = dino::metrics::RegisterProcessMetrics(&registry);
    if (s.ok()) {
      absl::StatusOr<std::unique_ptr<dino::agent::WorkerMetrics>> created =
          dino::agent::WorkerMetrics::Create(&registry, options.runner.device);
      s = created.status();
      if (s.ok()) worker_metrics = std::move(*created);
      options.runner.metrics = worker_metrics.get();
    }
    if (s.ok()) {
      metrics = std::make_unique<dino::metrics::MetricsHttpServer>(&registry);
      s = metrics->Start("", metrics_port);
    }
    if (!s.ok()) {
      std::cerr << "dino-worker: metrics: " << s << "\n";
      return 1;
    }
  }

  dino::agent::CoordinatorLink link(options.coordinator, security, dino::DefaultFileSystem());
  dino::agent::Agent agent(options, &link, dino::DefaultFileSystem(), dino::RealClock::Get());
  std::atomic<bool> finished{false};
  std::thread watcher([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (finished.load()) return;
    DINO_LOG(INFO) << "signal " << sig
                   << ": leaving after the current step (signal again to stop now)";
    agent.Leave(absl::StrCat(sig == SIGTERM ? "SIGTERM" : "SIGINT", " on the worker"));
    sigwait(&signals, &sig);
    if (finished.load()) return;
    DINO_LOG(INFO) << "signal " << sig << ": stopping now";
    agent.Shutdown();
  });
  const dino::BlasFacts blas_facts = dino::CurrentBlasFacts();
  if (std::string warning = dino::BlasWarning(blas_facts); !warning.empty()) {
    DINO_LOG(WARNING) << warning;
  }
  const std::string blas = dino::BlasDescription(blas_facts);
  DINO_LOG(INFO) << "dino-worker " << options.runner.device << " connecting to "
                 << options.coordinator << (blas.empty() ? "" : absl::StrCat(" (", blas, ")"));
  agent.Run();
  // Wake the watcher if Run ended for another reason.
  finished.store(true);
  pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  return 0;
}
