// The real dino-worker refuses, at startup and before it connects, to send its token in plaintext
// to a coordinator off loopback (common/token_transport.h decides; this checks main() asks it).
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/agent/run_worker.h"

namespace {

using ::testing::HasSubstr;
using dino::agent::test_support::RunResult;
using dino::agent::test_support::RunWorker;

TEST(DinoWorkerTokenTest, ATokenIsNotSentInPlaintextOffLoopback) {
  const std::string token_file = ::testing::TempDir() + "/worker.token";
  std::ofstream(token_file) << "worker-secret\n";
  // 192.0.2.1 is TEST-NET-1: never reachable, so only a worker that skipped the check would wait.
  RunResult result = RunWorker(
      "--coordinator 192.0.2.1:50051 --device cpu --rendezvous-port 29999 "
      "--work-dir /tmp --token-file " +
      token_file);
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("refusing to send a bearer token in plaintext"));
  EXPECT_THAT(result.output, HasSubstr("192.0.2.1:50051"));
  EXPECT_THAT(result.output, HasSubstr("--insecure"));
}

}  // namespace
