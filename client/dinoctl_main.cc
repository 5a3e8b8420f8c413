// dinoctl: see client/dinoctl.h for the commands, options and exit codes.
//
// Built twice: as `dinoctl`, without LibTorch (it starts in milliseconds and runs where LibTorch is
// not installed), and as `dinoctl-export`, with the export command linked in
// (DINO_DINOCTL_WITH_EXPORT). `dinoctl export ...` execs dinoctl-export from its own directory
// with the same arguments; every other command runs in dinoctl itself.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/dinoctl.h"
#include "client/dinoctl_commands.h"
#include "common/file_system.h"
#ifdef DINO_DINOCTL_WITH_EXPORT
#include "client/export_command.h"
#endif

namespace {

#ifndef DINO_DINOCTL_WITH_EXPORT
// Replaces this process with dinoctl-export (next to /proc/self/exe) run on `args`; returns only
// when that fails.
absl::Status ExecExportHelper(const std::vector<std::string>& args) {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0)
    return absl::InternalError(absl::StrCat("readlink /proc/self/exe: ", strerror(errno)));
  const std::string helper =
      absl::StrCat(dino::DirName(std::string(self, static_cast<size_t>(n))), "/dinoctl-export");
  std::vector<std::string> storage = {helper};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  std::cerr.flush();
  execv(helper.c_str(), argv.data());
  return absl::UnimplementedError(absl::StrCat(
      "export needs ", helper, " (dinoctl with LibTorch, built with dinoctl): ", strerror(errno)));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  dino::client::DinoctlEnv env;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  env.stderr_is_tty = isatty(STDERR_FILENO) == 1;
  if (const char* coordinator = std::getenv("DINO_COORDINATOR")) env.coordinator_env = coordinator;
  if (const char* token = std::getenv("DINO_TOKEN")) env.token_env = token;
  std::vector<std::string> args(argv + 1, argv + argc);
#ifdef DINO_DINOCTL_WITH_EXPORT
  env.export_command = dino::client::RunExport;
#else
  env.export_command = [&args](const dino::client::CommandContext&,
                               const dino::client::ExportFlags&) -> absl::StatusOr<int> {
    return ExecExportHelper(args);
  };
#endif
  return dino::client::RunDinoctl(args, env);
}
