// TestNetwork: test hosts as Linux network namespaces, for the tests that need real network
// faults (a host that drops off the network without a reset, slow and lossy links).
//
// Each host is a namespace of its own with one interface, eth0, at 10.213.0.N/24; its peer veth
// is a port of a bridge that lives in one more namespace. No interface or route is added to the
// namespace the test runs in, so no traffic leaves the test's namespaces, and two tests running
// at once never share a link. Names carry the test process's pid; namespaces left by a test
// process that no longer exists (one killed by a timeout) are removed, with what ran in them, by
// the next Create.
//
// Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2; shaping also needs iptables and the
// dino-test-net-shaper binary. Create returns UNAVAILABLE with the reason when the machine cannot
// make namespaces, so that a test can skip instead of failing.
//
// The destructor removes every namespace this object made (call it after the processes running
// in them are gone: a namespace with a process in it outlives its name) and stops the shapers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dino::cluster {

struct TestHost {
  std::string name;     // As given to AddHost, e.g. "worker-0".
  std::string netns;    // The namespace's name (under /run/netns).
  std::string address;  // Its first IPv4 address.
  int index = 0;        // N in 10.213.0.N and in the bridge port's name, vN.
};

class TestNetwork {
 public:
  // UNAVAILABLE when namespaces cannot be made here (not root, no iproute2, no bridge support).
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create();
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  // A new host, connected to the bridge, with lo up and one address.
  absl::StatusOr<TestHost> AddHost(const std::string& name);
  // Gives `host` one more address on its eth0 and returns it (a service that moves to another
  // address of the same machine).
  absl::StatusOr<std::string> AddAddress(const TestHost& host);

  // Takes the host's bridge port down: its packets, both ways, are lost silently (no reset is
  // sent to anyone), as when a machine's cable is pulled or its switch port fails.
  absl::Status Disconnect(const TestHost& host);
  absl::Status Reconnect(const TestHost& host);

  // Every packet arriving at `host` is held `delay` and `loss_percent` of them are dropped (a
  // seeded, repeatable choice). Applied to every host of a link, each direction gets the delay
  // once. Done on arrival, not departure: a sender's packets held in its own stack would count
  // against TCP's small-queue limit and throttle the link far below what the delay implies.
  // UNAVAILABLE when iptables or the shaper binary is missing.
  absl::Status Shape(const TestHost& host, absl::Duration delay, double loss_percent);

  // Stops every shaper (their queues then pass packets untouched) and returns how many packets
  // they passed and dropped in all.
  struct ShapedPackets {
    int64_t passed = 0;
    int64_t dropped = 0;
  };
  ShapedPackets StopShaping();

  // Moves the calling thread, and every thread it creates from now on, into `host`'s namespace
  // (the test's own gRPC clients then dial from that host). The destructor moves it back.
  absl::Status Enter(const TestHost& host);

  // Addresses, links, firewall rules and the shapers' output of every host, for failure messages.
  std::string Logs();

 private:
  TestNetwork(std::string prefix, std::string log_dir);
  absl::Status MakeBridge();
  absl::Status RunIp(const std::vector<std::string>& args);
  absl::Status RunIn(const std::string& netns, const std::vector<std::string>& argv);

  std::string prefix_;   // "dn<pid>-"
  std::string log_dir_;  // The shapers' logs.
  std::string bridge_netns_;
  std::vector<TestHost> hosts_;
  std::vector<std::string> namespaces_;  // Every namespace made, the bridge's first.
  struct Shaper;
  std::vector<std::unique_ptr<Shaper>> shapers_;
  int original_netns_fd_ = -1;  // The calling thread's namespace before Enter.
  int next_extra_address_ = 100;
};

}  // namespace dino::cluster
