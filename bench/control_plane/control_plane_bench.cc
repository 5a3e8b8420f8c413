// Control-plane load: a real dino-coordinator process on loopback, N simulated workers holding
// Connect streams and heartbeating, M watchers following a job, and clients submitting and
// reading jobs.
//
//   build/bench/control_plane/bench_control_plane [--benchmark_filter=...]
//   (DINO_COORDINATOR_BIN overrides the coordinator binary; default build/server/dino-coordinator)
//
// Counters: heartbeats/s (items_per_second of BM_Heartbeats), the coordinator's CPU seconds per
// heartbeat and the share of one core that 1000 workers at 1 Hz would cost, p50/p99 latency of
// SubmitJob and GetJob with 1000 workers and 100 watchers, the coordinator's RSS. The
// coordinator's CPU and RSS are read from /proc/<pid>, so the load generator's own cost is not
// counted.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "dino/v1/worker.grpc.pb.h"

namespace {

using dino::v1::CoordinatorMessage;
using dino::v1::WorkerMessage;

constexpr int kWorkers = 1000;
constexpr int kWatchers = 100;

// The coordinator under test, as a child process.
class CoordinatorProcess {
 public:
  CoordinatorProcess() {
    const char* bin = std::getenv("DINO_COORDINATOR_BIN");
    std::string binary = bin != nullptr ? bin : DINO_COORDINATOR_DEFAULT_BIN;
    port_ = 20000 + getpid() % 20000;
    dir_ = "/tmp/dino_bench_cp_" + std::to_string(getpid());
    pid_ = fork();
    if (pid_ == 0) {
      const int null_fd = open("/dev/null", O_WRONLY);  // Keep its per-worker log lines out.
      if (null_fd >= 0) dup2(null_fd, STDERR_FILENO);
      std::string listen = "127.0.0.1:" + std::to_string(port_);
      execl(binary.c_str(), binary.c_str(), "--listen", listen.c_str(), "--data-dir", dir_.c_str(),
            "--metrics-port", "0", "--worker-timeout", "60s", static_cast<char*>(nullptr));
      _exit(127);
    }
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }
  ~CoordinatorProcess() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    std::string cmd = "rm -rf " + dir_;
    (void)std::system(cmd.c_str());
  }
  // utime + stime in seconds.
  double CpuSeconds() const {
    std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
    std::string line;
    std::getline(stat, line);
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string skip;
    for (int i = 0; i < 11; ++i) fields >> skip;
    double utime = 0, stime = 0;
    fields >> utime >> stime;
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  double RssBytes() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (status >> key) {
      if (key == "VmRSS:") {
        double kb = 0;
        status >> kb;
        return kb * 1024;
      }
    }
    return 0;
  }
  std::shared_ptr<grpc::Channel> NewChannel(int index) const {
    grpc::ChannelArguments args;
    args.SetInt("dino.bench.channel", index);  // Distinct args: a separate connection.
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                     grpc::InsecureChannelCredentials(), args);
  }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  std::shared_ptr<grpc::Channel> channel_;
};

// One simulated worker's Connect stream; Beat() writes a heartbeat and returns when it is sent.
class WorkerStream final : public grpc::ClientBidiReactor<WorkerMessage, CoordinatorMessage> {
 public:
  WorkerStream(dino::v1::WorkerService::Stub* stub, const std::string& worker_id) {
    stub->async()->Connect(&context_, this);
    StartRead(&incoming_);
    message_.mutable_hello()->set_worker_id(worker_id);
    Write();
    StartCall();
  }
  void Write() {
    absl::MutexLock lock(&mu_);
    writing_ = true;
    StartWrite(&message_);
  }
  void Beat() {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](bool* w) { return !*w; }, &writing_));
    }
    message_.mutable_heartbeat();
    Write();
  }
  void WaitIdle() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* w) { return !*w; }, &writing_));
  }
  void OnWriteDone(bool) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
  }
  void OnReadDone(bool ok) override {
    if (ok) StartRead(&incoming_);
  }
  void OnDone(const grpc::Status&) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  void Stop() {
    context_.TryCancel();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }

 private:
  grpc::ClientContext context_;
  WorkerMessage message_;
  CoordinatorMessage incoming_;
  absl::Mutex mu_;
  bool writing_ = false;
  bool done_ = false;
};

struct Fleet {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<dino::v1::WorkerService::Stub>> stubs;
  std::vector<std::unique_ptr<WorkerStream>> streams;

  Fleet(const CoordinatorProcess& coordinator, int workers) {
    for (int c = 0; c < 16; ++c) {
      channels.push_back(coordinator.NewChannel(c));
      stubs.push_back(dino::v1::WorkerService::NewStub(channels.back()));
    }
    for (int i = 0; i < workers; ++i) {
      grpc::ClientContext context;
      dino::v1::RegisterRequest request;
      request.set_name("bench-" + std::to_string(i));
      // CUDA workers: the CPU jobs the benchmark submits never take them.
      request.set_device("cuda:0");
      request.set_rendezvous_address("127.0.0.1:" + std::to_string(30000 + i));
      dino::v1::RegisterResponse response;
      stubs[i % stubs.size()]->Register(&context, request, &response);
      streams.push_back(
          std::make_unique<WorkerStream>(stubs[i % stubs.size()].get(), response.worker_id()));
    }
    for (auto& s : streams) s->WaitIdle();
  }
  ~Fleet() {
    for (auto& s : streams) s->Stop();
  }
};

dino::v1::JobSpec Spec() {
  dino::v1::JobSpec spec;
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_SYNTHETIC);
  spec.mutable_augmentation()->set_global_crop_size(32);
  spec.mutable_augmentation()->set_local_crop_size(16);
  spec.mutable_model()->set_patch_size(8);
  spec.mutable_optim()->set_warmup_epochs(1);
  spec.mutable_optim()->set_epochs(1);
  return spec;
}

void BM_Heartbeats(benchmark::State& state) {
  CoordinatorProcess coordinator;
  Fleet fleet(coordinator, static_cast<int>(state.range(0)));
  const double cpu0 = coordinator.CpuSeconds();
  int64_t beats = 0;
  for (auto _ : state) {
    for (auto& s : fleet.streams) s->Beat();
    for (auto& s : fleet.streams) s->WaitIdle();
    beats += static_cast<int64_t>(fleet.streams.size());
  }
  const double cpu = coordinator.CpuSeconds() - cpu0;
  state.SetItemsProcessed(beats);
  state.counters["coord_cpu_us_per_beat"] = 1e6 * cpu / static_cast<double>(beats);
  state.counters["core_share_1000w_1hz"] = 1000.0 * cpu / static_cast<double>(beats);
  state.counters["coord_rss_MiB"] = coordinator.RssBytes() / (1 << 20);
}
BENCHMARK(BM_Heartbeats)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// SubmitJob and GetJob latency while 1000 workers heartbeat at 1 Hz and 100 clients watch a job.
void BM_JobRpcsUnderLoad(benchmark::State& state) {
  CoordinatorProcess coordinator;
  Fleet fleet(coordinator, kWorkers);
  auto jobs = dino::v1::JobService::NewStub(coordinator.channel());
  std::string watched;
  {
    grpc::ClientContext context;
    dino::v1::SubmitJobRequest request;
    *request.mutable_spec() = Spec();
    dino::v1::SubmitJobResponse response;
    jobs->SubmitJob(&context, request, &response);
    watched = response.job().id();
  }
  std::vector<std::unique_ptr<grpc::ClientContext>> watch_contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<dino::v1::JobEvent>>> watches;
  for (int i = 0; i < kWatchers; ++i) {
    watch_contexts.push_back(std::make_unique<grpc::ClientContext>());
    dino::v1::WatchJobRequest request;
    request.set_job_id(watched);
    watches.push_back(jobs->WatchJob(watch_contexts.back().get(), request));
  }
  std::atomic<bool> stop{false};
  std::thread heartbeats([&] {
    while (!stop.load()) {
      const absl::Time start = absl::Now();
      for (auto& s : fleet.streams) s->Beat();
      absl::SleepFor(absl::Seconds(1) - (absl::Now() - start));
    }
  });
  const bool submit = state.range(0) == 0;
  std::vector<double> latencies;
  const double cpu0 = coordinator.CpuSeconds();
  const absl::Time wall0 = absl::Now();
  for (auto _ : state) {
    grpc::ClientContext context;
    const absl::Time start = absl::Now();
    if (submit) {
      dino::v1::SubmitJobRequest request;
      *request.mutable_spec() = Spec();
      dino::v1::SubmitJobResponse response;
      benchmark::DoNotOptimize(jobs->SubmitJob(&context, request, &response));
    } else {
      dino::v1::GetJobRequest request;
      request.set_job_id(watched);
      dino::v1::Job job;
      benchmark::DoNotOptimize(jobs->GetJob(&context, request, &job));
    }
    latencies.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
  }
  const double wall = absl::ToDoubleSeconds(absl::Now() - wall0);
  const double cpu = coordinator.CpuSeconds() - cpu0;
  stop = true;
  heartbeats.join();
  for (auto& c : watch_contexts) c->TryCancel();
  for (auto& w : watches) w->Finish().ok();
  std::sort(latencies.begin(), latencies.end());
  state.counters["p50_us"] = latencies[latencies.size() / 2];
  state.counters["p99_us"] = latencies[latencies.size() * 99 / 100];
  state.counters["coord_cpu_share"] = cpu / wall;
  state.counters["coord_rss_MiB"] = coordinator.RssBytes() / (1 << 20);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(submit ? "SubmitJob" : "GetJob");
}
BENCHMARK(BM_JobRpcsUnderLoad)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
