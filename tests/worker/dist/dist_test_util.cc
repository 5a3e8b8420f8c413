#include "tests/worker/dist/dist_test_util.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "worker/dist/free_port.h"

namespace dino::dist::testing {

Rendezvous LoopbackRendezvous(const std::string& job, int64_t attempt, int rank, int world,
                              int port) {
  Rendezvous r;
  r.job_id = job;
  r.attempt = attempt;
  r.rank = rank;
  r.world_size = world;
  r.master_host = "127.0.0.1";
  r.master_port = port;
  return r;
}

DistOptions TestOptions(absl::Duration timeout, absl::Duration rendezvous_timeout) {
  DistOptions o;
  o.timeout = timeout;
  o.rendezvous_timeout = rendezvous_timeout;
  o.gloo_bind_host = "127.0.0.1";
  return o;
}

absl::Status RunRanks(int world, const std::string& job,
                      const std::function<absl::Status(int, ProcessGroupHandle*)>& body,
                      absl::Duration timeout) {
  auto port = PickFreeTcpPort();
  if (!port.ok()) return port.status();
  absl::Mutex mu;
  absl::Status first;
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      absl::Status s;
      // Rank 0 serves the store; peers that dial before it listens back off for a whole second.
      if (r > 0) absl::SleepFor(absl::Milliseconds(30));
      auto group =
          CreateProcessGroup(LoopbackRendezvous(job, 0, r, world, *port), TestOptions(timeout));
      if (!group.ok()) {
        s = group.status();
      } else {
        s = body(r, group->get());
      }
      absl::MutexLock lock(&mu);
      if (first.ok() && !s.ok()) first = s;
    });
  }
  for (auto& t : threads) t.join();
  return first;
}

MlpImpl::MlpImpl(int in, int hidden, int out, int depth) {
  layers = register_module("layers", torch::nn::ModuleList());
  int width = in;
  for (int i = 0; i < depth; ++i) {
    const int next = i + 1 == depth ? out : hidden;
    layers->push_back(torch::nn::Linear(width, next));
    width = next;
  }
}

torch::Tensor MlpImpl::forward(torch::Tensor x) {
  for (size_t i = 0; i < layers->size(); ++i) {
    x = layers[i]->as<torch::nn::Linear>()->forward(x);
    if (i + 1 < layers->size()) x = torch::tanh(x);
  }
  return x;
}

absl::Mutex& DefaultGeneratorMutex() {
  static absl::Mutex* const mu = new absl::Mutex();
  return *mu;
}

Mlp MakeMlp(uint64_t seed, int in, int hidden, int out, int depth) {
  absl::MutexLock lock(&DefaultGeneratorMutex());
  torch::manual_seed(seed);
  return Mlp(in, hidden, out, depth);
}

int CountThreads() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
  }
  return n;
}

namespace {

std::set<std::string> OwnSocketInodes() {
  std::set<std::string> inodes;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      char buf[256];
      const std::string path = std::string("/proc/self/fd/") + e->d_name;
      const ssize_t len = readlink(path.c_str(), buf, sizeof(buf) - 1);
      if (len <= 0) continue;
      const std::string link(buf, len);
      if (link.rfind("socket:[", 0) == 0) inodes.insert(link.substr(8, link.size() - 9));
    }
    closedir(d);
  }
  return inodes;
}

// Calls f(local_port, inode) for each LISTEN socket in /proc/net/tcp{,6}.
template <typename F>
void ForEachListening(F f) {
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (cols.size() < 10 || cols[3] != "0A") continue;
      const std::string& local = cols[1];
      const std::string port_hex = local.substr(local.find(':') + 1);
      f(static_cast<int>(std::stoul(port_hex, nullptr, 16)), cols[9]);
    }
  }
}

}  // namespace

int CountListeningSockets() {
  const auto own = OwnSocketInodes();
  int n = 0;
  ForEachListening([&](int, const std::string& inode) { n += own.count(inode) ? 1 : 0; });
  return n;
}

bool PortIsListening(int port) {
  bool found = false;
  ForEachListening([&](int p, const std::string&) { found = found || p == port; });
  return found;
}

}  // namespace dino::dist::testing
