// NetworkFaultTest: the fixture of the network fault tests. Each test gets its own test hosts
// (TestNetwork): one for the client (the test itself runs there), one for the coordinator and one
// per worker, and a Cluster whose processes run on them and rendezvous across the bridge.
//
// A machine that cannot make namespaces (not root) skips the test with the reason. On failure the
// teardown prints the hosts' addresses, links, firewall rules and shaper logs after every
// process's log. Figures (seconds to a detection, steps lost, a slowdown) are printed as
// "figure: NAME = VALUE UNIT" and appended to network-fault-figures.txt in the working directory
// (the build directory under ctest).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dino/v1/coordinator.pb.h"
#include "tests/cluster/test_network.h"
#include "tests/e2e/cluster.h"

namespace dino::cluster {

class NetworkFaultTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Adds `count` worker hosts (worker i on its own host) and places worker i there. Call before
  // starting them.
  void AddWorkerHosts(int count);

  // Prints and records one measured figure of this test.
  void Figure(const std::string& name, double value, const std::string& unit);

  // The time of the first line of worker `i`'s latest log that was written at or after `after`
  // and contains one of `needles`; nullopt when there is none.
  std::optional<absl::Time> WorkerLogTime(int i, absl::Time after,
                                          const std::vector<std::string>& needles) const;
  // Polls until WorkerLogTime finds a line or `timeout` passes.
  absl::StatusOr<absl::Time> WaitForWorkerLog(int i, absl::Time after,
                                              const std::vector<std::string>& needles,
                                              absl::Duration timeout);
  // The state of the worker named `name` in ListWorkers (the newest registration of that name).
  absl::StatusOr<dino::v1::WorkerInfo> WorkerNamed(const std::string& name);
  // Every event of job `id` from the first, until the stream has caught up with a terminal state.
  absl::StatusOr<std::vector<dino::v1::JobEvent>> AllEvents(const std::string& id);

  // The worker index (as in StartWorker) that holds `rank` in attempt `attempt` (1-based) of `job`.
  static int WorkerOfRank(const dino::v1::Job& job, int attempt, int rank);

  std::unique_ptr<TestNetwork> net_;
  TestHost client_host_;
  TestHost coordinator_host_;
  std::vector<TestHost> worker_hosts_;
  std::unique_ptr<e2e::Cluster> cluster_;
};

}  // namespace dino::cluster

// In a NetworkFaultTest: asserts that the StatusOr `expr` is OK and declares `lhs` as its value.
// (The teardown prints every process's and host's log on failure.)
#undef ASSERT_OK_AND_ASSIGN
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                \
  auto lhs##_or = (expr);                              \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status();     \
  auto lhs = std::move(*lhs##_or)
