#include "tests/e2e/cluster.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "worker/dist/free_port.h"

namespace dino::e2e {

Process::Process(std::string name, std::vector<std::string> argv, std::string log_path,
                 const std::string& netns)
    : name_(std::move(name)), log_path_(std::move(log_path)) {
  const std::string netns_path = netns.empty() ? "" : "/run/netns/" + netns;
  pid_ = fork();
  if (pid_ == 0) {
    const int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (!netns_path.empty()) {
      const int ns = open(netns_path.c_str(), O_RDONLY);
      if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
        const char message[] = "e2e: cannot enter the test host's network namespace\n";
        (void)!write(2, message, sizeof(message) - 1);
        _exit(126);
      }
      close(ns);
    }
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
}

Process::~Process() { Terminate(); }

bool Process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void Process::Reap(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    if (absl::Now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

void Process::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  Reap(absl::Seconds(10));
}

void Process::Terminate() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  Reap(absl::Seconds(20));
}

absl::StatusOr<int> Process::Stop(absl::Duration grace) {
  if (pid_ <= 0) return absl::FailedPreconditionError(absl::StrCat(name_, " is not running"));
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  Kill();
  return absl::DeadlineExceededError(
      absl::StrCat(name_, " ignored SIGTERM for ", absl::FormatDuration(grace)));
}

void Process::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

absl::StatusOr<int> Process::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(name_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::FailedPreconditionError(absl::StrCat(name_, " was already reaped"));
}

Cluster::Cluster(const std::string& test_name) {
  // As dino-worker does: reconnect to a restarted coordinator within a quarter second even while
  // no call is waiting (gRPC reads this once, when it starts).
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "250", /*overwrite=*/0);
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp != nullptr ? tmp : "/tmp";
  std::string templ = absl::StrCat(base, "/dino-e2e-", test_name, "-XXXXXX");
  dir_ = mkdtemp(templ.data());
  coordinator_port_ = dist::PickFreeTcpPort().value();
  client_credentials_ = grpc::InsecureChannelCredentials();
  ConnectClient();
}

void Cluster::ConnectClient() {
  // The tests poll through coordinator restarts: reconnect within a second, not after gRPC's
  // default backoff (which grows to two minutes).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  stub_ = dino::v1::JobService::NewStub(grpc::CreateCustomChannel(
      coordinator_target_.empty() ? coordinator_address() : coordinator_target_,
      client_credentials_, args));
}

void Cluster::PlaceCoordinator(Placement placement) {
  coordinator_placement_ = std::move(placement);
  ConnectClient();
}

void Cluster::PlaceWorker(int i, Placement placement) {
  worker_placements_[i] = std::move(placement);
}

void Cluster::SetCoordinatorTarget(std::string target) {
  coordinator_target_ = std::move(target);
  ConnectClient();
}

Process* Cluster::worker_process(int i) {
  auto it = workers_.find(i);
  return it == workers_.end() ? nullptr : it->second.get();
}

Cluster::~Cluster() {
  workers_.clear();
  coordinator_.reset();
  if (::testing::Test::HasFailure() || std::getenv("DINO_E2E_KEEP") != nullptr) {
    std::cerr << "e2e: logs and data kept in " << dir_ << "\n";
    return;
  }
  std::error_code error;
  std::filesystem::remove_all(dir_, error);
  if (error) std::cerr << "e2e: could not remove " << dir_ << ": " << error.message() << "\n";
}

std::string Cluster::worker_dir(int i) const { return absl::StrCat(dir_, "/worker-", i); }

int Cluster::worker_metrics_port(int i) const {
  auto it = worker_metrics_ports_.find(i);
  return it == worker_metrics_ports_.end() ? 0 : it->second;
}

void Cluster::StartCoordinator() {
  if (metrics_ && coordinator_metrics_port_ == 0) {
    coordinator_metrics_port_ = dist::PickFreeTcpPort().value();
  }
  const std::string log = absl::StrCat(dir_, "/coordinator-", ++starts_, ".log");
  log_paths_.push_back(log);
  std::vector<std::string> argv = {DINO_COORDINATOR_BIN,
                                   "--listen",
                                   coordinator_address(),
                                   "--data-dir",
                                   data_dir_spelling.empty() ? coordinator_data_dir()
                                                             : data_dir_spelling,
                                   "--metrics-host",
                                   "127.0.0.1",
                                   "--metrics-port",
                                   absl::StrCat(coordinator_metrics_port_),
                                   "--worker-timeout",
                                   worker_timeout,
                                   "--heartbeat-interval",
                                   heartbeat_interval};
  argv.insert(argv.end(), coordinator_flags.begin(), coordinator_flags.end());
  coordinator_ = std::make_unique<Process>("coordinator", std::move(argv), log,
                                           coordinator_placement_.netns);
}

void Cluster::KillCoordinator() { coordinator_->Kill(); }

void Cluster::StartWorker(int i) {
  while (static_cast<int>(worker_ports_.size()) <= i) {
    worker_ports_.push_back(dist::PickFreeTcpPort().value());
  }
  if (metrics_ && worker_metrics_ports_[i] == 0) {
    worker_metrics_ports_[i] = dist::PickFreeTcpPort().value();
  }
  const std::string log = absl::StrCat(dir_, "/worker-", i, "-", ++starts_, ".log");
  log_paths_.push_back(log);
  const Placement placement = worker_placements_[i];
  std::vector<std::string> argv = {DINO_WORKER_BIN,
                                   "--metrics-port",
                                   absl::StrCat(worker_metrics_port(i)),
                                   "--coordinator",
                                   coordinator_target_.empty() ? coordinator_address()
                                                               : coordinator_target_,
                                   "--device",
                                   worker_device,
                                   "--threads",
                                   "1",
                                   "--rendezvous-port",
                                   absl::StrCat(worker_ports_[i]),
                                   "--advertise-host",
                                   placement.address,
                                   "--name",
                                   absl::StrCat("worker-", i),
                                   "--work-dir",
                                   worker_dir(i),
                                   "--collective-timeout",
                                   collective_timeout_seconds};
  argv.insert(argv.end(), worker_flags.begin(), worker_flags.end());
  workers_[i] = std::make_unique<Process>(absl::StrCat("worker-", i), std::move(argv), log,
                                          placement.netns);
}

void Cluster::UseClientCredentials(std::shared_ptr<grpc::ChannelCredentials> credentials) {
  client_credentials_ = std::move(credentials);
  ConnectClient();
}

void Cluster::KillWorker(int i) { workers_.at(i)->Kill(); }

absl::StatusOr<int> Cluster::StopWorker(int i, absl::Duration grace) {
  return workers_.at(i)->Stop(grace);
}

pid_t Cluster::worker_pid(int i) const {
  auto it = workers_.find(i);
  return it == workers_.end() ? -1 : it->second->pid();
}

bool Cluster::WorkerRunning(int i) { return workers_.at(i)->running(); }

absl::StatusOr<int> Cluster::WaitWorker(int i, absl::Duration timeout) {
  return workers_.at(i)->Wait(timeout);
}

std::string Cluster::WorkerLog(int i) const {
  std::ifstream in(workers_.at(i)->log_path());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string Cluster::coordinator_address() const {
  return absl::StrCat(coordinator_placement_.address, ":", coordinator_port_);
}

absl::StatusOr<dino::v1::Job> Cluster::Submit(const dino::v1::JobSpec& spec) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  context.set_wait_for_ready(true);
  dino::v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  dino::v1::SubmitJobResponse response;
  DINO_RETURN_IF_ERROR(FromGrpcStatus(stub_->SubmitJob(&context, request, &response)));
  return response.job();
}

absl::StatusOr<dino::v1::Job> Cluster::GetJob(const std::string& id) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  dino::v1::GetJobRequest request;
  request.set_job_id(id);
  dino::v1::Job job;
  DINO_RETURN_IF_ERROR(FromGrpcStatus(stub_->GetJob(&context, request, &job)));
  return job;
}

absl::StatusOr<std::vector<dino::v1::CheckpointInfo>> Cluster::Checkpoints(const std::string& id) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  dino::v1::ListCheckpointsRequest request;
  request.set_job_id(id);
  dino::v1::ListCheckpointsResponse response;
  DINO_RETURN_IF_ERROR(FromGrpcStatus(stub_->ListCheckpoints(&context, request, &response)));
  return std::vector<dino::v1::CheckpointInfo>(response.checkpoints().begin(),
                                               response.checkpoints().end());
}

absl::StatusOr<std::string> Cluster::Download(const std::string& id,
                                             const std::string& checkpoint_id) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  dino::v1::DownloadCheckpointRequest request;
  request.set_job_id(id);
  request.set_checkpoint_id(checkpoint_id);
  auto reader = stub_->DownloadCheckpoint(&context, request);
  dino::v1::DownloadCheckpointResponse chunk;
  std::string bytes;
  while (reader->Read(&chunk)) bytes += chunk.data();
  DINO_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
  return bytes;
}

absl::StatusOr<std::vector<dino::v1::WorkerInfo>> Cluster::Workers(bool include_dead) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  dino::v1::ListWorkersRequest request;
  request.set_include_dead(include_dead);
  dino::v1::ListWorkersResponse response;
  DINO_RETURN_IF_ERROR(FromGrpcStatus(stub_->ListWorkers(&context, request, &response)));
  return std::vector<dino::v1::WorkerInfo>(response.workers().begin(), response.workers().end());
}

absl::StatusOr<dino::v1::Job> Cluster::WaitFor(
    const std::string& id, const std::function<bool(const dino::v1::Job&)>& pred,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::OkStatus();
  while (absl::Now() < deadline) {
    absl::StatusOr<dino::v1::Job> job = GetJob(id);
    if (job.ok() && pred(*job)) return job;
    if (!job.ok()) last = job.status();
    absl::SleepFor(absl::Milliseconds(100));
  }
  absl::StatusOr<dino::v1::Job> job = GetJob(id);
  return absl::DeadlineExceededError(
      absl::StrCat("job ", id, " did not reach the expected state in time; last: ",
                   job.ok() ? job->DebugString() : job.status().ToString(), " ", last.ToString()));
}

absl::StatusOr<dino::v1::Job> Cluster::WaitTerminal(const std::string& id, absl::Duration timeout) {
  return WaitFor(
      id,
      [](const dino::v1::Job& j) {
        return j.state() == dino::v1::JOB_STATE_SUCCEEDED ||
               j.state() == dino::v1::JOB_STATE_FAILED ||
               j.state() == dino::v1::JOB_STATE_CANCELLED;
      },
      timeout);
}

std::string Cluster::Logs() const {
  std::ostringstream out;
  for (const std::string& path : log_paths_) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > 6000) text = "..." + text.substr(text.size() - 6000);
    out << "==== " << path << " ====\n" << text << "\n";
  }
  return out.str();
}

dino::v1::JobSpec TinySpec(int world_size, int epochs) {
  dino::v1::JobSpec spec;
  spec.set_name("tiny");
  auto* m = spec.mutable_model();
  m->set_preset("custom");
  m->set_dim(32);
  m->set_depth(2);
  m->set_heads(2);
  m->set_patch_size(4);
  m->set_in_channels(3);
  m->set_drop_path_rate(0.0);
  auto* h = spec.mutable_head();
  h->set_out_dim(256);
  h->set_hidden_dim(64);
  h->set_bottleneck_dim(32);
  auto* d = spec.mutable_data();
  d->set_kind(dino::v1::DATASET_KIND_SYNTHETIC);
  d->set_synthetic_images(256);
  d->set_synthetic_classes(4);
  d->set_synthetic_image_size(16);
  d->set_loader_threads(1);
  auto* a = spec.mutable_augmentation();
  a->set_global_crop_size(16);
  a->set_local_crop_size(8);
  a->set_n_local_crops(2);
  auto* o = spec.mutable_optim();
  o->set_epochs(epochs);
  o->set_batch_size_per_rank(32 / world_size);
  o->set_warmup_epochs(1);
  spec.mutable_dino()->set_warmup_teacher_temp_epochs(1);
  spec.mutable_resources()->set_world_size(world_size);
  spec.mutable_resources()->set_threads_per_rank(1);
  spec.mutable_checkpoint()->set_every_steps(4);
  spec.set_progress_every_steps(2);
  spec.set_max_restarts(3);
  return spec;
}

}  // namespace dino::e2e
