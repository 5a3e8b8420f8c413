#include "client/dinoctl_commands.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/watch_view.h"
#include "common/status_macros.h"
#include "spec/spec_file.h"

namespace dino::client {
namespace {

absl::StatusOr<dino::v1::JobState> ParseState(const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(upper, "JOB_STATE_")) upper = "JOB_STATE_" + upper;
  dino::v1::JobState state;
  if (!dino::v1::JobState_Parse(upper, &state) || state == dino::v1::JOB_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state ", text,
        ": unknown state; expected queued, running, restarting, succeeded, failed or cancelled"));
  }
  return state;
}

int ExitCodeForState(dino::v1::JobState state) {
  return state == dino::v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

bool IsTerminal(dino::v1::JobState s) {
  return s == dino::v1::JOB_STATE_SUCCEEDED || s == dino::v1::JOB_STATE_FAILED ||
         s == dino::v1::JOB_STATE_CANCELLED;
}

std::string TempPathFor(const std::string& path) {
  return absl::StrCat(path, ".tmp-", GenerateRequestId().substr(4, 12));
}

}  // namespace

void PrintDocument(const CommandContext& ctx, const std::string& json) {
  if (ctx.format == OutputFormat::kYaml) {
    *ctx.out << JsonToYaml(json);
  } else {
    *ctx.out << json << (absl::EndsWith(json, "\n") ? "" : "\n");
  }
}

ProgressCallback DownloadProgressPrinter(const CommandContext& ctx) {
  constexpr int64_t kProgressMinBytes = 8 << 20;
  return [&ctx, last_percent = -1](int64_t received, int64_t total) mutable {
    if (!ctx.stderr_is_tty || total < kProgressMinBytes) return;
    int percent = static_cast<int>(received * 100 / total);
    if (percent == last_percent) return;
    last_percent = percent;
    *ctx.err << "\r\033[Kdownloading " << FormatBytes(received) << " / " << FormatBytes(total)
             << " (" << percent << "%)" << (received == total ? "\n" : "") << std::flush;
  };
}

ReconnectCallback ReconnectNotePrinter(const CommandContext& ctx) {
  return [&ctx](const absl::Status& why) {
    *ctx.err << "reconnecting to the coordinator (" << why.message() << ")\n";
  };
}

absl::StatusOr<int> RunSubmit(const CommandContext& ctx, const SubmitFlags& flags) {
  DINO_ASSIGN_OR_RETURN(dino::v1::JobSpec spec,
                        spec::LoadJobSpecFile(ctx.fs, flags.spec_path, flags.overrides));
  DINO_ASSIGN_OR_RETURN(dino::v1::SubmitJobResponse response, ctx.client->SubmitJob(spec));
  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << response.job().id() << "\n";
  } else if (!flags.watch) {
    PrintDocument(ctx, ToJson(response.job()));
  }
  if (!response.created()) {
    *ctx.err << "note: " << response.job().id()
             << " was submitted before with the same request_id; nothing new was created\n";
  }
  ctx.out->flush();
  if (flags.watch) return RunWatch(ctx, response.job().id());
  return kExitOk;
}

absl::StatusOr<int> RunList(const CommandContext& ctx, const ListFlags& flags) {
  dino::v1::ListJobsRequest request;
  for (const std::string& s : flags.states) {
    DINO_ASSIGN_OR_RETURN(dino::v1::JobState state, ParseState(s));
    request.add_states(state);
  }
  for (const std::string& label : flags.labels) {
    size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--label ", label, ": expected key=value"));
    }
    (*request.mutable_labels())[label.substr(0, eq)] = label.substr(eq + 1);
  }
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::Job> jobs, ctx.client->ListJobs(request));
  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << FormatJobsTable(jobs, ctx.clock->Now());
  } else {
    PrintDocument(ctx, FormatJobsJson(jobs));
  }
  return kExitOk;
}

absl::StatusOr<int> RunGet(const CommandContext& ctx, const std::string& job_id) {
  DINO_ASSIGN_OR_RETURN(dino::v1::Job job, ctx.client->GetJob(job_id));
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::CheckpointInfo> checkpoints,
                        ctx.client->ListCheckpoints(job_id));
  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << FormatJobDescription(job, checkpoints, ctx.clock->Now());
  } else {
    PrintDocument(ctx, FormatJobJson(job, checkpoints));
  }
  return kExitOk;
}

absl::StatusOr<int> RunWatch(const CommandContext& ctx, const std::string& job_id) {
  // Fails fast (NOT_FOUND, unreachable) before the stream, which would wait out reconnects.
  DINO_ASSIGN_OR_RETURN(dino::v1::Job job, ctx.client->GetJob(job_id));
  WatchView::Mode mode = ctx.format == OutputFormat::kJson ? WatchView::Mode::kJsonLines
                         : ctx.stdout_is_tty               ? WatchView::Mode::kTty
                                                           : WatchView::Mode::kPlain;
  WatchView view(mode, ctx.out);
  absl::Status status = ctx.client->WatchJob(
      job_id, WatchOptions{},
      [&](const dino::v1::JobEvent& event) {
        view.OnEvent(event);
        return true;
      },
      [&](const absl::Status& why) {
        view.Note(absl::StrCat("reconnecting to the coordinator (", why.message(), ")"));
      });
  view.Finish();
  DINO_RETURN_IF_ERROR(status);
  dino::v1::JobState final_state = view.state();
  if (!IsTerminal(final_state)) {
    DINO_ASSIGN_OR_RETURN(job, ctx.client->GetJob(job_id));
    final_state = job.state();
  }
  if (mode != WatchView::Mode::kJsonLines) {
    *ctx.out << job_id << " " << ShortStateName(final_state) << "\n";
  }
  return ExitCodeForState(final_state);
}

absl::StatusOr<int> RunCancel(const CommandContext& ctx, const std::string& job_id,
                              const std::string& reason) {
  DINO_ASSIGN_OR_RETURN(dino::v1::Job job, ctx.client->CancelJob(job_id, reason));
  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << job.id() << " " << ShortStateName(job.state()) << "\n";
  } else {
    PrintDocument(ctx, ToJson(job));
  }
  return kExitOk;
}

absl::StatusOr<int> RunCheckpoints(const CommandContext& ctx, const std::string& job_id) {
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::CheckpointInfo> checkpoints,
                        ctx.client->ListCheckpoints(job_id));
  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << FormatCheckpointsTable(checkpoints, ctx.clock->Now());
  } else {
    PrintDocument(ctx, FormatCheckpointsJson(checkpoints));
  }
  return kExitOk;
}

absl::StatusOr<int> RunDownload(const CommandContext& ctx, const DownloadFlags& flags) {
  // Bytes go to a temporary file next to the target, renamed over it only once the size and
  // sha256 verified: a reader never sees a partial or corrupt checkpoint under the final name.
  std::string temp = TempPathFor(flags.output_path);
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, ctx.fs->NewWritableFile(temp));
  absl::StatusOr<dino::v1::CheckpointInfo> info = ctx.client->DownloadCheckpoint(
      flags.job_id, flags.checkpoint == "latest" ? "" : flags.checkpoint,
      [&](absl::string_view data) { return file->Append(data); }, DownloadProgressPrinter(ctx),
      ReconnectNotePrinter(ctx));
  absl::Status status = info.status();
  if (status.ok()) status = file->Sync();
  absl::Status closed = file->Close();
  if (status.ok()) status = closed;
  if (status.ok()) status = ctx.fs->RenameFile(temp, flags.output_path);
  if (status.ok()) status = ctx.fs->SyncDir(DirName(flags.output_path));
  if (!status.ok()) {
    ctx.fs->DeleteFile(temp).IgnoreError();
    return status;
  }
  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << absl::StrFormat("%s: %s of %s (step %d, %s, sha256 %s)\n", flags.output_path,
                                info->id(), flags.job_id, info->step(),
                                FormatBytes(info->size_bytes()), info->sha256());
  } else {
    PrintDocument(ctx, ToJson(*info));
  }
  return kExitOk;
}

absl::StatusOr<int> RunMetrics(const CommandContext& ctx, const MetricsFlags& flags) {
  dino::v1::GetJobMetricsRequest request;
  request.set_job_id(flags.job_id);
  for (const std::string& s : flags.series) request.add_series(s);
  request.set_max_points(flags.max_points);
  DINO_ASSIGN_OR_RETURN(dino::v1::GetJobMetricsResponse metrics,
                        ctx.client->GetJobMetrics(request));
  std::string format = flags.format;
  if (format.empty()) {
    format = ctx.format == OutputFormat::kJson   ? "json"
             : ctx.format == OutputFormat::kYaml ? "yaml"
                                                 : "table";
  }
  if (format == "csv") {
    *ctx.out << FormatMetricsCsv(metrics);
  } else if (format == "table") {
    *ctx.out << FormatMetricsTable(metrics);
  } else {
    CommandContext doc = ctx;
    doc.format = format == "yaml" ? OutputFormat::kYaml : OutputFormat::kJson;
    PrintDocument(doc, ToJson(metrics));
  }
  return kExitOk;
}

absl::StatusOr<int> RunWorkers(const CommandContext& ctx, bool include_dead) {
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::WorkerInfo> workers,
                        ctx.client->ListWorkers(include_dead));
  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << FormatWorkersTable(workers, ctx.clock->Now());
  } else {
    PrintDocument(ctx, FormatWorkersJson(workers));
  }
  return kExitOk;
}

}  // namespace dino::client
