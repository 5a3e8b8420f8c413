// The commands of dinoctl, one function each, after CLI11 has parsed the flags (dinoctl.cc).
// Internal to dinoctl. Each returns the exit code, or an error status that RunDinoctl prints.
//
// Thread-safety: one command at a time per context. Failure: the DinoClient's statuses;
// INVALID_ARGUMENT for bad flag values found after parsing.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/dino_client.h"
#include "client/dinoctl.h"
#include "client/output.h"

namespace dino::client {

struct CommandContext {
  DinoClient* client;
  Clock* clock;
  FileSystem* fs;
  std::ostream* out;
  std::ostream* err;
  OutputFormat format = OutputFormat::kTable;
  bool stdout_is_tty = false;
  bool stderr_is_tty = false;
};

struct SubmitFlags {
  std::string spec_path;
  std::vector<std::string> overrides;
  bool watch = false;
};
struct ListFlags {
  std::vector<std::string> states;
  std::vector<std::string> labels;
};
struct DownloadFlags {
  std::string job_id;
  std::string checkpoint = "latest";
  std::string output_path;
};
struct ExportFlags {
  std::string job_id;
  std::string checkpoint = "latest";
  std::string output_path;
};
struct MetricsFlags {
  std::string job_id;
  std::vector<std::string> series;
  std::string format;  // "" = the global -o.
  int max_points = 0;
};

// Prints `json` as the requested machine format (JSON or YAML).
void PrintDocument(const CommandContext& ctx, const std::string& json);
// Download progress on stderr ("downloading 12 MiB / 80 MiB (15%)", redrawn in place) when stderr
// is a TTY and the checkpoint is at least 8 MiB; shared by download and export.
ProgressCallback DownloadProgressPrinter(const CommandContext& ctx);
// "reconnecting to the coordinator (why)" on stderr.
ReconnectCallback ReconnectNotePrinter(const CommandContext& ctx);

absl::StatusOr<int> RunSubmit(const CommandContext& ctx, const SubmitFlags& flags);
absl::StatusOr<int> RunList(const CommandContext& ctx, const ListFlags& flags);
absl::StatusOr<int> RunGet(const CommandContext& ctx, const std::string& job_id);
absl::StatusOr<int> RunWatch(const CommandContext& ctx, const std::string& job_id);
absl::StatusOr<int> RunCancel(const CommandContext& ctx, const std::string& job_id,
                              const std::string& reason);
absl::StatusOr<int> RunCheckpoints(const CommandContext& ctx, const std::string& job_id);
absl::StatusOr<int> RunDownload(const CommandContext& ctx, const DownloadFlags& flags);
absl::StatusOr<int> RunMetrics(const CommandContext& ctx, const MetricsFlags& flags);
absl::StatusOr<int> RunWorkers(const CommandContext& ctx, bool include_dead);

}  // namespace dino::client
