// dinoctl: see client/dinoctl.h for the commands, options and exit codes.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/dinoctl.h"
#ifdef DINO_DINOCTL_WITH_EXPORT
#include "client/export_command.h"
#endif

int main(int argc, char** argv) {
  dino::client::DinoctlEnv env;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  env.stderr_is_tty = isatty(STDERR_FILENO) == 1;
  if (const char* coordinator = std::getenv("DINO_COORDINATOR")) env.coordinator_env = coordinator;
  if (const char* token = std::getenv("DINO_TOKEN")) env.token_env = token;
#ifdef DINO_DINOCTL_WITH_EXPORT
  env.export_command = dino::client::RunExport;
#endif
  std::vector<std::string> args(argv + 1, argv + argc);
  return dino::client::RunDinoctl(args, env);
}
