// dinoctl's command line (CLI11) and the mapping of statuses to messages and exit codes.
#include "client/dinoctl.h"

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/dinoctl_commands.h"
#include "common/grpc_credentials.h"
#include "common/token_transport.h"

namespace dino::client {
namespace {

constexpr char kDefaultCoordinator[] = "localhost:50051";

struct GlobalFlags {
  std::string coordinator;
  std::string output = "table";
  std::string timeout = "10s";
  std::string token;
  std::string token_file;
  std::string tls_ca;
  bool insecure = false;
};

absl::StatusOr<absl::Duration> ParseTimeout(const std::string& text) {
  absl::Duration d;
  double seconds = 0;
  if (absl::ParseDuration(text, &d) && d > absl::ZeroDuration()) return d;
  if (absl::SimpleAtod(text, &seconds) && seconds > 0) return absl::Seconds(seconds);
  return absl::InvalidArgumentError(
      absl::StrCat("--timeout ", text, ": expected a positive duration such as 30s or 2m"));
}

CLI::App* AddCommand(CLI::App& app, const std::string& name, const std::string& description,
                     const std::string& example) {
  CLI::App* sub = app.add_subcommand(name, description);
  sub->fallthrough();  // Global flags may follow the command: `dinoctl get job-1 -o json`.
  sub->footer(absl::StrCat("Example:\n  ", example));
  return sub;
}

}  // namespace

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

int RunDinoctl(const std::vector<std::string>& args, const DinoctlEnv& env) {
  std::ostream& out = *env.out;
  std::ostream& err = *env.err;
  CLI::App app{"dinoctl: submit, follow and control dinotrain jobs.", "dinoctl"};
  app.require_subcommand(1);
  app.footer(
      "The coordinator is --coordinator, else $DINO_COORDINATOR, else localhost:50051.\n"
      "Exit codes: 0 ok, 1 job failed or cancelled (watch) or other error, 2 usage,\n"
      "3 not found, 4 coordinator unavailable.\n"
      "Example:\n  dinoctl --coordinator 10.0.0.5:50051 list --state running");
  GlobalFlags global;
  app.add_option("--coordinator", global.coordinator, "host:port of dino-coordinator");
  app.add_option("-o,--output", global.output, "Output format")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--timeout", global.timeout, "Deadline of each call, e.g. 10s, 2m")
      ->capture_default_str();
  app.add_option("--token", global.token,
                 "Bearer token; visible to other users in the process list, so prefer "
                 "--token-file or $DINO_TOKEN");
  app.add_option("--token-file", global.token_file, "File holding the bearer token");
  app.add_option("--tls-ca", global.tls_ca, "PEM CA that signed the coordinator's certificate");
  app.add_flag("--insecure", global.insecure,
               "Send the token over plaintext gRPC to a non-loopback coordinator");

  std::function<absl::StatusOr<int>(const CommandContext&)> command;

  SubmitFlags submit;
  CLI::App* sub = AddCommand(app, "submit", "Submit a job spec (YAML or JSON); prints the job id",
                             "dinoctl submit examples/fashion-mnist.yaml --set optim.epochs=1 "
                             "--set labels.team=vision --watch");
  sub->add_option("SPEC", submit.spec_path, "Job spec file (YAML or JSON, fields of JobSpec)")
      ->required();
  sub->add_flag("--watch", submit.watch, "Follow the job until it ends (exit code as watch)");
  sub->add_option("--set", submit.overrides, "Override one field: key.path=value (repeatable)")
      ->allow_extra_args(false);
  sub->callback([&] { command = [&](const CommandContext& c) { return RunSubmit(c, submit); }; });

  ListFlags list;
  sub = AddCommand(app, "list", "List jobs, newest first: id, name, state, progress, age, restarts",
                   "dinoctl list --state running --label team=vision -o json");
  sub->add_option("--state", list.states, "Only jobs in this state (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--label", list.labels, "Only jobs with this label, key=value (repeatable)")
      ->allow_extra_args(false);
  sub->callback([&] { command = [&](const CommandContext& c) { return RunList(c, list); }; });

  std::string job_id;
  sub = AddCommand(app, "get",
                   "Show a job: spec with defaults, state, attempts, stats, "
                   "checkpoints, collapse warnings",
                   "dinoctl get job-17 -o json");
  sub->add_option("JOB", job_id, "Job id")->required();
  sub->callback([&] { command = [&](const CommandContext& c) { return RunGet(c, job_id); }; });

  sub = AddCommand(app, "watch",
                   "Follow a job until it ends; exit code 0 succeeded, 1 failed or cancelled",
                   "dinoctl watch job-17");
  sub->add_option("JOB", job_id, "Job id")->required();
  sub->callback([&] { command = [&](const CommandContext& c) { return RunWatch(c, job_id); }; });

  std::string reason;
  sub = AddCommand(app, "cancel", "Cancel a queued or running job", "dinoctl cancel job-17");
  sub->add_option("JOB", job_id, "Job id")->required();
  sub->add_option("--reason", reason, "Recorded in the job's message");
  sub->callback(
      [&] { command = [&](const CommandContext& c) { return RunCancel(c, job_id, reason); }; });

  sub = AddCommand(app, "checkpoints", "List a job's committed checkpoints",
                   "dinoctl checkpoints job-17");
  sub->add_option("JOB", job_id, "Job id")->required();
  sub->callback(
      [&] { command = [&](const CommandContext& c) { return RunCheckpoints(c, job_id); }; });

  DownloadFlags download;
  sub = AddCommand(app, "download",
                   "Download a checkpoint, verify its sha256 and write it atomically",
                   "dinoctl download job-17 --checkpoint best -o best.ckpt");
  sub->add_option("JOB", download.job_id, "Job id")->required();
  sub->add_option("--checkpoint", download.checkpoint, "Checkpoint id, latest or best")
      ->capture_default_str();
  sub->add_option("-o,--output", download.output_path, "File to write")->required();
  sub->callback(
      [&] { command = [&](const CommandContext& c) { return RunDownload(c, download); }; });

  ExportFlags export_flags;
  sub = AddCommand(app, "export",
                   "Write a checkpoint's teacher backbone as a PyTorch state dict (torch.load)",
                   "dinoctl export job-17 --checkpoint best -o teacher.pt");
  sub->add_option("JOB", export_flags.job_id, "Job id")->required();
  sub->add_option("--checkpoint", export_flags.checkpoint, "Checkpoint id, latest or best")
      ->capture_default_str();
  sub->add_option("-o,--output", export_flags.output_path, "File to write (.pt)")->required();
  sub->callback([&] {
    command = [&](const CommandContext& c) -> absl::StatusOr<int> {
      if (!env.export_command) {
        return absl::UnimplementedError(
            "this dinoctl was built without LibTorch; export needs the DINO core (dino_model)");
      }
      return env.export_command(c, export_flags);
    };
  });

  MetricsFlags metrics;
  sub = AddCommand(app, "metrics", "Print a job's training series, one row per step",
                   "dinoctl metrics job-17 --series loss,kl -o csv");
  sub->add_option("JOB", metrics.job_id, "Job id")->required();
  sub->add_option("--series", metrics.series, "Series names, comma-separated (default all)")
      ->delimiter(',')
      ->allow_extra_args(false);
  sub->add_option("--max-points", metrics.max_points, "Downsample each series (0 = all)");
  sub->add_option("-o,--output", metrics.format, "Output format")
      ->check(CLI::IsMember({"table", "csv", "json", "yaml"}));
  sub->callback([&] { command = [&](const CommandContext& c) { return RunMetrics(c, metrics); }; });

  bool include_dead = false;
  sub = AddCommand(app, "workers", "List the workers known to the coordinator",
                   "dinoctl workers --all");
  sub->add_flag("--all", include_dead, "Include dead workers");
  sub->callback(
      [&] { command = [&](const CommandContext& c) { return RunWorkers(c, include_dead); }; });

  std::vector<std::string> argv_storage = {"dinoctl"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const std::string& a : argv_storage) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e, out, err);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  absl::Status status;
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(global.timeout);
  if (!timeout.ok()) {
    err << "error: " << absl::StatusCodeToString(timeout.status().code()) << ": "
        << timeout.status().message() << "\n";
    return kExitUsage;
  }
  DinoClientOptions options = env.client_defaults;
  options.target = !global.coordinator.empty()    ? global.coordinator
                   : !env.coordinator_env.empty() ? env.coordinator_env
                                                  : kDefaultCoordinator;
  options.timeout = *timeout;
  options.token = !global.token.empty() ? global.token : env.token_env;
  if (!global.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadSmallFile(global.token_file, "--token-file");
    if (!token.ok()) {
      err << "error: " << token.status().message() << "\n";
      return kExitUsage;
    }
    if (global.token.empty()) options.token = std::string(absl::StripAsciiWhitespace(*token));
  }
  options.tls.ca_file = global.tls_ca;
  if (!global.token.empty()) err << kTokenFlagWarning << "\n";
  if (absl::Status transport = CheckTokenTransport(options.target, !options.token.empty(),
                                                   !options.tls.ca_file.empty(), global.insecure);
      !transport.ok()) {
    err << "error: " << transport.message() << "\n";
    return kExitUsage;
  }
  Clock* clock = env.clock != nullptr ? env.clock : RealClock::Get();
  // options.clock (backoff sleeps) stays as given: env.clock is only "now" for ages, and a
  // simulated display clock must not stall retries.
  absl::StatusOr<std::unique_ptr<DinoClient>> opened = DinoClient::Open(options);
  if (!opened.ok()) {
    err << "error: " << opened.status().message() << "\n";
    return kExitUsage;
  }
  std::unique_ptr<DinoClient> client = std::move(*opened);

  CommandContext context;
  context.client = client.get();
  context.clock = clock;
  context.fs = env.fs != nullptr ? env.fs : DefaultFileSystem();
  context.out = &out;
  context.err = &err;
  context.format = global.output == "json"   ? OutputFormat::kJson
                   : global.output == "yaml" ? OutputFormat::kYaml
                                             : OutputFormat::kTable;
  context.stdout_is_tty = env.stdout_is_tty;
  context.stderr_is_tty = env.stderr_is_tty;

  absl::StatusOr<int> result = command(context);
  out.flush();
  if (result.ok()) return *result;
  std::string message(result.status().message());
  if (result.status().code() == absl::StatusCode::kUnavailable ||
      result.status().code() == absl::StatusCode::kDeadlineExceeded) {
    message = absl::StrCat("coordinator at ", options.target,
                           " did not answer (is dino-coordinator running? set --coordinator or "
                           "DINO_COORDINATOR): ",
                           message);
  }
  err << "error: " << absl::StatusCodeToString(result.status().code()) << ": " << message << "\n";
  return ExitCodeFor(result.status());
}

}  // namespace dino::client
