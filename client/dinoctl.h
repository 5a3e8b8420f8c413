// dinoctl: the command line of dinotrain, over DinoClient.
//
//   dinoctl [--coordinator ADDR] [-o table|json|yaml] [--timeout D] COMMAND ...
//   commands: submit, list, get, watch, cancel, checkpoints, download, export, metrics, workers
//
// The coordinator address is --coordinator, else $DINO_COORDINATOR, else localhost:50051.
// The bearer token is --token, else --token-file's contents, else $DINO_TOKEN; --tls-ca verifies
// a coordinator that serves TLS. --token works but warns (argv is visible to other users). A token
// goes over plaintext only to a loopback coordinator unless --insecure is given
// (common/token_transport.h); otherwise dinoctl exits 2 before connecting.
// Errors go to stderr as "error: <gRPC code>: <message>".
// Exit codes: 0 ok; 1 the watched job failed or was cancelled, or any other error; 2 usage (bad
// flags, bad spec); 3 not found; 4 coordinator unavailable (or the deadline passed).
//
// RunDinoctl is main() without the process: streams, clock, file system and the TTY question are
// injected so that tests run every command in-process against a fake coordinator.
//
// `export` needs LibTorch (the core's checkpoint loader and exporter), which this library does not
// link: the dinoctl-export binary injects client/export_command.h's RunExport as
// DinoctlEnv::export_command, and dinoctl's export execs dinoctl-export (see dinoctl_main.cc).
//
// Thread-safety: one call at a time per DinoctlEnv. Failure: reported through the exit code.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/dino_client.h"
#include "common/clock.h"
#include "common/file_system.h"

namespace dino::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;
inline constexpr int kExitUnavailable = 4;

struct CommandContext;  // dinoctl_commands.h
struct ExportFlags;     // dinoctl_commands.h
// Runs `dinoctl export` (see client/export_command.h); returns the exit code or an error status.
using ExportCommand = std::function<absl::StatusOr<int>(const CommandContext&, const ExportFlags&)>;

struct DinoctlEnv {
  std::ostream* out = nullptr;  // stdout. Not owned.
  std::ostream* err = nullptr;  // stderr. Not owned.
  Clock* clock = nullptr;       // "now" for ages. nullptr = RealClock.
  FileSystem* fs = nullptr;     // Spec files and downloads. nullptr = DefaultFileSystem().
  bool stdout_is_tty = false;   // watch draws a progress bar.
  bool stderr_is_tty = false;   // download shows progress.
  std::string coordinator_env;  // $DINO_COORDINATOR, "" when unset.
  std::string token_env;        // $DINO_TOKEN, "" when unset.
  // Retry/backoff settings (their clock sleeps between retries); target and timeout are
  // replaced by the flags.
  DinoClientOptions client_defaults;
  // `dinoctl export`; when empty, export fails UNIMPLEMENTED (a dinoctl built without LibTorch).
  ExportCommand export_command;
};

// Runs dinoctl with `args` (without the program name) and returns the exit code.
int RunDinoctl(const std::vector<std::string>& args, const DinoctlEnv& env);

// The exit code for an error status (NOT_FOUND 3, UNAVAILABLE/DEADLINE_EXCEEDED 4,
// INVALID_ARGUMENT 2, others 1).
int ExitCodeFor(const absl::Status& status);

}  // namespace dino::client
