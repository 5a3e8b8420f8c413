#include "client/export_command.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_system.h"
#include "common/status_macros.h"
#include "worker/dino/export.h"

namespace dino::client {

absl::StatusOr<int> RunExport(const CommandContext& ctx, const ExportFlags& flags) {
  // Asking first turns "no such job" and "nothing to export yet" into clear messages instead of
  // a download error about a checkpoint id.
  DINO_ASSIGN_OR_RETURN(dino::v1::Job job, ctx.client->GetJob(flags.job_id));
  DINO_ASSIGN_OR_RETURN(std::vector<dino::v1::CheckpointInfo> checkpoints,
                        ctx.client->ListCheckpoints(flags.job_id));
  if (checkpoints.empty()) {
    return absl::NotFoundError(absl::StrCat("job ", flags.job_id, " (", ShortStateName(job.state()),
                                            ") has no checkpoint yet: nothing to export"));
  }

  // The core parses a checkpoint from memory, so it is downloaded into memory; nothing reaches
  // the disk before the sha256 and the checkpoint's own framing were checked.
  std::string bytes;
  DINO_ASSIGN_OR_RETURN(dino::v1::CheckpointInfo info,
                        ctx.client->DownloadCheckpoint(
                            flags.job_id, flags.checkpoint == "latest" ? "" : flags.checkpoint,
                            [&bytes](absl::string_view data) {
                              bytes.append(data.data(), data.size());
                              return absl::OkStatus();
                            },
                            DownloadProgressPrinter(ctx), ReconnectNotePrinter(ctx)));
  const std::string source = absl::StrCat("checkpoint ", info.id(), " of ", flags.job_id);
  DINO_ASSIGN_OR_RETURN(std::string exported,
                        dino::ExportTeacherBackboneFromCheckpoint(bytes, source));
  bytes.clear();
  bytes.shrink_to_fit();
  DINO_RETURN_IF_ERROR(WriteFileAtomically(ctx.fs, flags.output_path, exported));

  if (ctx.format == OutputFormat::kTable) {
    *ctx.out << absl::StrFormat("%s: teacher backbone of %s from %s (step %d), %s\n",
                                flags.output_path, flags.job_id, info.id(), info.step(),
                                FormatBytes(static_cast<int64_t>(exported.size())));
  } else {
    PrintDocument(ctx, ToJson(info));
  }
  return kExitOk;
}

}  // namespace dino::client
