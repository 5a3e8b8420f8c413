// Cluster: real dino-coordinator and dino-worker processes on loopback for the end-to-end tests,
// plus a JobService client. Processes are started with fork/exec, log to files under the test's
// directory (printed on failure) and are killed (SIGKILL) or stopped (SIGTERM) on demand; the
// destructor stops everything that is still running.
#pragma once

#include <grpcpp/security/credentials.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dino/v1/coordinator.grpc.pb.h"

namespace dino::e2e {

class Process {
 public:
  // Starts argv[0] (a path) with stdout and stderr appended to `log_path`. With `netns`, the
  // process runs in that network namespace (a name under /run/netns: a test host).
  Process(std::string name, std::vector<std::string> argv, std::string log_path,
          const std::string& netns = "");
  ~Process();
  bool running();
  void Kill();       // SIGKILL, then reap.
  void Terminate();  // SIGTERM, wait up to 20 s, then SIGKILL.
  // SIGTERM, then the exit code once it exits by itself within `grace`; past it, SIGKILL and
  // DEADLINE_EXCEEDED. A death by signal N is 128 + N.
  absl::StatusOr<int> Stop(absl::Duration grace);
  void Signal(int signal);  // Sends `signal` and returns (e.g. SIGINT to a client).
  // Waits for the process to exit and returns its exit code (128 + signal when killed by one);
  // DEADLINE_EXCEEDED (process left running) when it is still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  pid_t pid() const { return pid_; }  // -1 once reaped.
  const std::string& log_path() const { return log_path_; }
  const std::string& name() const { return name_; }

 private:
  void Reap(absl::Duration timeout);
  std::string name_;
  std::string log_path_;
  pid_t pid_ = -1;
};

// One test's coordinator and workers, with their data and logs under $TMPDIR/dino-e2e-NAME-XXXXXX.
// The destructor stops every process, then removes that directory unless the test has failed
// or DINO_E2E_KEEP is set (it then prints where the directory is).
class Cluster {
 public:
  explicit Cluster(const std::string& test_name);
  ~Cluster();

  // Where a process runs: a test host's network namespace (tests/cluster/test_network.h) and the
  // address it listens on and advertises. The default is loopback in the test's own namespace.
  struct Placement {
    std::string netns;
    std::string address = "127.0.0.1";
  };
  // From the next StartCoordinator on; the client (jobs(), Submit, ...) dials the new address at
  // once, unless SetCoordinatorTarget chose what to dial.
  void PlaceCoordinator(Placement placement);
  // From the next StartWorker(i) on.
  void PlaceWorker(int i, Placement placement);
  // What workers (from the next StartWorker on) and the client (at once) dial instead of
  // coordinator_address(): e.g. a gRPC target naming several addresses,
  // "ipv4:10.0.0.1:5000,10.0.0.2:5000", for a coordinator that may come back on another one.
  void SetCoordinatorTarget(std::string target);
  int coordinator_port() const { return coordinator_port_; }
  // The liveness flags of the next StartCoordinator, and the workers' collective timeout.
  std::string worker_timeout = "3s";
  std::string heartbeat_interval = "300ms";
  std::string collective_timeout_seconds = "10";

  void StartCoordinator();
  // Extra dino-coordinator flags for the next StartCoordinator (e.g. {"--data-roots", dir}).
  std::vector<std::string> coordinator_flags;
  // The --data-dir of the next StartCoordinator: coordinator_data_dir() unless set, e.g. to the
  // same directory spelled another way.
  std::string data_dir_spelling;
  std::string coordinator_data_dir() const { return dir_ + "/coordinator"; }
  void KillCoordinator();
  // Starts worker `i` (a new process each time; its work dir persists across restarts).
  void StartWorker(int i);
  // The --device of the next StartWorker calls ("cpu", or "cuda:0" for the GPU tests).
  std::string worker_device = "cpu";
  // Extra dino-worker flags for the next StartWorker calls (e.g. {"--token-file", f}).
  std::vector<std::string> worker_flags;
  // From now on the JobService client (jobs(), Submit, GetJob, ...) connects with `credentials`
  // (e.g. TLS with a CA, composed with a bearer token) instead of plaintext.
  void UseClientCredentials(std::shared_ptr<grpc::ChannelCredentials> credentials);
  void KillWorker(int i);
  // From the next Start* on, processes serve /metrics on free ports (the coordinator on
  // 127.0.0.1); off by default (--metrics-port 0).
  void EnableMetrics() { metrics_ = true; }
  int coordinator_metrics_port() const { return coordinator_metrics_port_; }
  int worker_metrics_port(int i) const;  // 0 when worker `i` serves none.
  // A graceful stop (what Kubernetes and `docker stop` do): see Process::Stop.
  absl::StatusOr<int> StopWorker(int i, absl::Duration grace);
  pid_t worker_pid(int i) const;  // -1 when worker `i` is not running.
  bool WorkerRunning(int i);      // False once worker `i`'s process has exited.
  // Waits for worker `i` to exit by itself: see Process::Wait.
  absl::StatusOr<int> WaitWorker(int i, absl::Duration timeout);
  std::string WorkerLog(int i) const;       // The whole log of worker `i`'s latest process.
  std::string coordinator_address() const;  // "ADDRESS:PORT" of the coordinator's placement.
  Process* coordinator_process() { return coordinator_.get(); }
  Process* worker_process(int i);  // Null when worker `i` was never started.

  dino::v1::JobService::Stub* jobs() { return stub_.get(); }
  const std::string& dir() const { return dir_; }
  std::string worker_dir(int i) const;

  absl::StatusOr<dino::v1::Job> Submit(const dino::v1::JobSpec& spec);
  absl::StatusOr<dino::v1::Job> GetJob(const std::string& id);
  absl::StatusOr<std::vector<dino::v1::CheckpointInfo>> Checkpoints(const std::string& id);
  // ListWorkers; dead workers too with `include_dead`.
  absl::StatusOr<std::vector<dino::v1::WorkerInfo>> Workers(bool include_dead = false);
  // The bytes of checkpoint `checkpoint_id` of job `id` through DownloadCheckpoint.
  absl::StatusOr<std::string> Download(const std::string& id, const std::string& checkpoint_id);
  // Polls until the job is in a terminal state or `timeout` passes (then DEADLINE_EXCEEDED).
  absl::StatusOr<dino::v1::Job> WaitTerminal(const std::string& id, absl::Duration timeout);
  // Polls until `pred(job)` holds.
  absl::StatusOr<dino::v1::Job> WaitFor(const std::string& id,
                                        const std::function<bool(const dino::v1::Job&)>& pred,
                                        absl::Duration timeout);
  // The logs of every process, for failure messages.
  std::string Logs() const;

 private:
  std::string dir_;
  int coordinator_port_ = 0;
  bool metrics_ = false;
  int coordinator_metrics_port_ = 0;
  std::map<int, int> worker_metrics_ports_;
  std::vector<int> worker_ports_;
  std::unique_ptr<Process> coordinator_;
  std::map<int, std::unique_ptr<Process>> workers_;
  std::vector<std::string> log_paths_;
  int starts_ = 0;
  std::unique_ptr<dino::v1::JobService::Stub> stub_;
  std::shared_ptr<grpc::ChannelCredentials> client_credentials_;
  Placement coordinator_placement_;
  std::map<int, Placement> worker_placements_;
  std::string coordinator_target_;
  void ConnectClient();
};

// A tiny synthetic job that trains in seconds on one CPU core.
dino::v1::JobSpec TinySpec(int world_size, int epochs);

// How long the tests let a tiny job take, start to end.
inline constexpr absl::Duration kJobTimeout = absl::Seconds(240);

}  // namespace dino::e2e

// In a test with a local `Cluster cluster`: asserts that the StatusOr `expr` is OK (printing every
// process's log when it is not) and declares `lhs` as its value.
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                      \
  auto lhs##_or = (expr);                                                    \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status() << "\n" << cluster.Logs(); \
  auto lhs = std::move(*lhs##_or)

namespace dino::e2e {

}  // namespace dino::e2e
