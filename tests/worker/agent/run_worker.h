// Runs the real dino-worker binary (DINO_WORKER_BIN, defined by the test's CMake target) with
// arguments and collects its exit code and output, for the tests of what main() checks before it
// connects.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace dino::agent::test_support {

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr.
};

// `args` is appended to the command line as it is (shell words). A worker that got past the
// checks would retry an unreachable coordinator for ever; `timeout` turns that into exit code 124
// rather than a hung test.
inline RunResult RunWorker(const std::string& args) {
  const std::string command = std::string("timeout 60 ") + DINO_WORKER_BIN + " " + args + " 2>&1";
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), n);
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace dino::agent::test_support
