#include "tests/cluster/test_network.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/e2e/cluster.h"

namespace dino::cluster {
namespace {

constexpr char kSubnet[] = "10.213.0.";

// Runs argv (argv[0] looked up on PATH) and returns its output; INTERNAL with the output when it
// exits non-zero, UNAVAILABLE when it cannot be started.
absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    dup2(pipe_fds[1], 2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string output;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) output.append(buffer, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string command = absl::StrJoin(argv, " ");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return absl::UnavailableError(absl::StrCat("cannot run `", command, "`: ", output));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` failed: ", output));
  }
  return output;
}

bool ProcessAlive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// Removes the namespaces of test processes that are gone, killing whatever still runs in them.
void RemoveStaleNamespaces() {
  DIR* dir = opendir("/run/netns");
  if (dir == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.rfind("dn", 0) != 0) continue;
    const size_t dash = name.find('-');
    if (dash == std::string::npos) continue;
    const pid_t owner = static_cast<pid_t>(std::atol(name.substr(2, dash - 2).c_str()));
    if (owner > 0 && !ProcessAlive(owner)) stale.push_back(name);
  }
  closedir(dir);
  for (const std::string& name : stale) {
    absl::StatusOr<std::string> pids = Run({"ip", "netns", "pids", name});
    if (pids.ok()) {
      for (absl::string_view pid : absl::StrSplit(*pids, '\n', absl::SkipWhitespace())) {
        kill(static_cast<pid_t>(std::atol(std::string(pid).c_str())), SIGKILL);
      }
    }
    (void)Run({"ip", "netns", "del", name});
  }
}

}  // namespace

struct TestNetwork::Shaper {
  std::unique_ptr<e2e::Process> process;
};

absl::StatusOr<std::unique_ptr<TestNetwork>> TestNetwork::Create() {
  if (geteuid() != 0) {
    return absl::UnavailableError("test hosts need root to create network namespaces");
  }
  if (!Run({"ip", "-V"}).ok()) {
    return absl::UnavailableError("test hosts need iproute2's `ip`, which is not installed");
  }
  RemoveStaleNamespaces();
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/dino-net-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  std::unique_ptr<TestNetwork> network(
      new TestNetwork(absl::StrCat("dn", getpid(), "-"), templ));
  if (absl::Status s = network->MakeBridge(); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot make test hosts here: ", s.message()));
  }
  return network;
}

TestNetwork::TestNetwork(std::string prefix, std::string log_dir)
    : prefix_(std::move(prefix)), log_dir_(std::move(log_dir)) {}

TestNetwork::~TestNetwork() {
  if (original_netns_fd_ >= 0) {
    setns(original_netns_fd_, CLONE_NEWNET);
    close(original_netns_fd_);
  }
  shapers_.clear();  // SIGTERM: each releases what it holds and exits.
  // Bridge last: its ports go with the hosts' ends of the veth pairs.
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    (void)Run({"ip", "netns", "del", *it});
  }
}

absl::Status TestNetwork::RunIp(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv).status();
}

absl::Status TestNetwork::RunIn(const std::string& netns, const std::vector<std::string>& argv) {
  std::vector<std::string> full = {"ip", "netns", "exec", netns};
  full.insert(full.end(), argv.begin(), argv.end());
  return Run(full).status();
}

absl::Status TestNetwork::MakeBridge() {
  bridge_netns_ = prefix_ + "bridge";
  if (absl::Status s = RunIp({"netns", "add", bridge_netns_}); !s.ok()) return s;
  namespaces_.push_back(bridge_netns_);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"-n", bridge_netns_, "link", "add", "br0", "type", "bridge"},
           {"-n", bridge_netns_, "link", "set", "br0", "up"},
           {"-n", bridge_netns_, "link", "set", "lo", "up"}}) {
    if (absl::Status s = RunIp(args); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<TestHost> TestNetwork::AddHost(const std::string& name) {
  TestHost host;
  host.name = name;
  host.index = static_cast<int>(hosts_.size()) + 1;
  host.netns = absl::StrCat(prefix_, host.index);
  host.address = absl::StrCat(kSubnet, host.index);
  if (absl::Status s = RunIp({"netns", "add", host.netns}); !s.ok()) return s;
  namespaces_.push_back(host.netns);
  const std::string port = absl::StrCat("v", host.index);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"-n", bridge_netns_, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", host.netns},
           {"-n", bridge_netns_, "link", "set", port, "master", "br0"},
           {"-n", bridge_netns_, "link", "set", port, "up"},
           {"-n", host.netns, "addr", "add", host.address + "/24", "dev", "eth0"},
           {"-n", host.netns, "link", "set", "eth0", "up"},
           {"-n", host.netns, "link", "set", "lo", "up"}}) {
    if (absl::Status s = RunIp(args); !s.ok()) return s;
  }
  hosts_.push_back(host);
  return host;
}

absl::StatusOr<std::string> TestNetwork::AddAddress(const TestHost& host) {
  const std::string address = absl::StrCat(kSubnet, next_extra_address_++);
  if (absl::Status s = RunIp({"-n", host.netns, "addr", "add", address + "/24", "dev", "eth0"});
      !s.ok()) {
    return s;
  }
  return address;
}

absl::Status TestNetwork::Disconnect(const TestHost& host) {
  return RunIp({"-n", bridge_netns_, "link", "set", absl::StrCat("v", host.index), "down"});
}

absl::Status TestNetwork::Reconnect(const TestHost& host) {
  return RunIp({"-n", bridge_netns_, "link", "set", absl::StrCat("v", host.index), "up"});
}

absl::Status TestNetwork::Shape(const TestHost& host, absl::Duration delay, double loss_percent) {
#if defined(DINO_NET_SHAPER_BIN)
  if (absl::Status s = RunIn(host.netns, {"iptables", "-A", "INPUT", "-i", "eth0", "-j", "NFQUEUE",
                                          "--queue-num", "0", "--queue-bypass"});
      !s.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot queue packets for shaping: ", s.message()));
  }
  auto shaper = std::make_unique<Shaper>();
  shaper->process = std::make_unique<e2e::Process>(
      absl::StrCat("shaper-", host.name),
      std::vector<std::string>{DINO_NET_SHAPER_BIN, "--queue", "0", "--delay-ms",
                               absl::StrCat(absl::ToDoubleMilliseconds(delay)), "--loss-percent",
                               absl::StrCat(loss_percent), "--seed", absl::StrCat(host.index)},
      absl::StrCat(log_dir_, "/shaper-", host.name, ".log"), host.netns);
  // The shaper prints its first line once the queue is bound; until then packets pass unshaped
  // (--queue-bypass), so wait for it.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    std::ifstream in(shaper->process->log_path());
    std::string line;
    if (std::getline(in, line) && line.find("queue 0") != std::string::npos) {
      shapers_.push_back(std::move(shaper));
      return absl::OkStatus();
    }
    if (!shaper->process->running()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::ifstream in(shaper->process->log_path());
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return absl::UnavailableError(absl::StrCat("the shaper did not start: ", log));
#else
  (void)host, (void)delay, (void)loss_percent;
  return absl::UnavailableError(
      "dino-test-net-shaper was not built (libnetfilter-queue-dev is not installed)");
#endif
}

TestNetwork::ShapedPackets TestNetwork::StopShaping() {
  ShapedPackets total;
  for (auto& shaper : shapers_) {
    shaper->process->Terminate();
    std::ifstream in(shaper->process->log_path());
    std::string line;
    while (std::getline(in, line)) {
      long long passed = 0, dropped = 0;
      if (std::sscanf(line.c_str(), "dino-test-net-shaper: passed %lld, dropped %lld", &passed,
                      &dropped) == 2) {
        total.passed += passed;
        total.dropped += dropped;
      }
    }
  }
  return total;
}

absl::Status TestNetwork::Enter(const TestHost& host) {
  if (original_netns_fd_ < 0) {
    original_netns_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  }
  const int fd = open(absl::StrCat("/run/netns/", host.netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("no namespace ", host.netns));
  const int rc = setns(fd, CLONE_NEWNET);
  close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("setns into ", host.netns, " failed"));
  return absl::OkStatus();
}

std::string TestNetwork::Logs() {
  std::ostringstream out;
  for (const TestHost& host : hosts_) {
    out << "==== host " << host.name << " (" << host.netns << ", " << host.address << ") ====\n";
    for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
             {"ip", "-n", host.netns, "-brief", "addr"},
             {"ip", "netns", "exec", host.netns, "iptables", "-S", "INPUT", "-v"}}) {
      absl::StatusOr<std::string> text = Run(argv);
      out << (text.ok() ? *text : text.status().ToString()) << "\n";
    }
  }
  absl::StatusOr<std::string> ports = Run({"ip", "-n", bridge_netns_, "-brief", "link"});
  out << "==== bridge " << bridge_netns_ << " ====\n"
      << (ports.ok() ? *ports : ports.status().ToString()) << "\n";
  for (const auto& shaper : shapers_) {
    std::ifstream in(shaper->process->log_path());
    out << "==== " << shaper->process->name() << " ====\n" << in.rdbuf() << "\n";
  }
  return out.str();
}

}  // namespace dino::cluster
