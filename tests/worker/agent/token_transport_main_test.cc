// The real dino-worker refuses, at startup and before it connects, to send its token in plaintext
// to a coordinator off loopback (common/token_transport.h decides; this checks main() asks it).
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::HasSubstr;

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult RunWorker(const std::string& args) {
  // `timeout` bounds a worker that wrongly went on to connect (it retries for ever).
  const std::string command = std::string("timeout 60 ") + DINO_WORKER_BIN + " " + args + " 2>&1";
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    result.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

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
