// dino-coordinator as a process: bad flags, an unwritable data dir and a port in use each give one
// line on stderr and a non-zero exit; SIGTERM shuts a serving coordinator down with exit 0 and the
// data dir reopens with its jobs. The binary is found relative to the build directory (the
// working directory of the tests).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;

const char kBinary[] = "server/dino-coordinator";

struct RunResult {
  int exit_code = -1;
  std::string stderr_text;
};

RunResult RunCoordinator(const std::string& args) {
  const std::string command = absl::StrCat(kBinary, " ", args, " 2>&1 >/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  RunResult result;
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.stderr_text.append(buffer.data(), n);
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// Starts a dino-coordinator serving on `listen` with `dir` as its data dir; returns its pid
// (-1 when fork fails).
pid_t StartServing(const std::string& listen, const std::string& dir) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl(kBinary, kBinary, "--listen", listen.c_str(), "--data-dir", dir.c_str(), "--metrics-port",
          "0", static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

size_t Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines.size();
}

TEST(CoordinatorMainTest, BadFlagGivesOneLineAndExit2) {
  RunResult result = RunCoordinator("--data-dir /tmp/x --no-such-flag");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(Lines(result.stderr_text), 1u) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("no-such-flag"));
  result = RunCoordinator("--data-dir /tmp/x --worker-timeout soon");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.stderr_text, HasSubstr("--worker-timeout must be a positive duration"));
}

TEST(CoordinatorMainTest, UnwritableDataDirGivesOneLine) {
  RunResult result =
      RunCoordinator("--listen 127.0.0.1:0 --metrics-port 0 --data-dir /proc/dino-no");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(Lines(result.stderr_text), 1u) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("data dir /proc/dino-no is not writable"));
}

TEST(CoordinatorMainTest, PortInUseGivesOneLine) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string dir = testing::NewTempDir("main_port");
  RunResult result = RunCoordinator(absl::StrCat("--listen 127.0.0.1:", ntohs(address.sin_port),
                                                 " --metrics-port 0 --data-dir ", dir));
  close(fd);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(Lines(result.stderr_text), 1u) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("cannot listen on 127.0.0.1:"));
}

// A second coordinator on the data dir of a running one refuses to start, names the holder's pid,
// and leaves the first one's database and checkpoints alone (it never opens them).
TEST(CoordinatorMainTest, SecondCoordinatorOnTheSameDataDirRefusesToStart) {
  const std::string dir = testing::NewTempDir("main_lock");
  const std::string listen = absl::StrCat("127.0.0.1:", FreePort());
  const pid_t first = StartServing(listen, dir);
  ASSERT_GE(first, 0);
  auto channel = grpc::CreateChannel(listen, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30)));
  RunResult second = RunCoordinator(absl::StrCat("--listen 127.0.0.1:", FreePort(),
                                                 " --metrics-port 0 --data-dir ", dir));
  EXPECT_NE(second.exit_code, 0);
  EXPECT_EQ(Lines(second.stderr_text), 1u) << second.stderr_text;
  EXPECT_THAT(second.stderr_text, HasSubstr(absl::StrCat(dir, " is in use by another process (pid ",
                                                          first, " (dino-coordinator)")));
  // The first one still serves.
  EXPECT_TRUE(
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5)));
  ASSERT_EQ(kill(first, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(first, &status, 0), first);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(CoordinatorMainTest, SigtermShutsDownGracefullyAndStateSurvives) {
  const std::string dir = testing::NewTempDir("main_term");
  const std::string listen = absl::StrCat("127.0.0.1:", FreePort());
  std::string job_id;
  for (int round = 0; round < 2; ++round) {
    const pid_t pid = StartServing(listen, dir);
    ASSERT_GE(pid, 0);
    auto channel = grpc::CreateChannel(listen, grpc::InsecureChannelCredentials());
    ASSERT_TRUE(
        channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30)));
    auto stub = dino::v1::JobService::NewStub(channel);
    if (round == 0) {
      grpc::ClientContext context;
      dino::v1::SubmitJobRequest request;
      *request.mutable_spec() = testing::TinySpec();
      dino::v1::SubmitJobResponse response;
      ASSERT_TRUE(stub->SubmitJob(&context, request, &response).ok());
      job_id = response.job().id();
    } else {
      grpc::ClientContext context;
      dino::v1::GetJobRequest request;
      request.set_job_id(job_id);
      dino::v1::Job job;
      ASSERT_TRUE(stub->GetJob(&context, request, &job).ok());
      EXPECT_EQ(job.state(), dino::v1::JOB_STATE_QUEUED);
    }
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
}

}  // namespace
}  // namespace dino::server
