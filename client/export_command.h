// `dinoctl export JOB [--checkpoint ID|latest|best] -o FILE.pt`: the teacher backbone of a job's
// checkpoint as a file PyTorch loads (torch.load gives a dict of tensors with the reference ViT's
// key names; load_state_dict(strict=True) into the reference VisionTransformer or timm's).
//
// It downloads the checkpoint (sha256-verified by DinoClient), parses it with the core's
// checkpoint loader, exports the teacher backbone with the core's exporter (worker/dino/export.h,
// the same bytes a worker writes at the end of a job) and writes the file atomically (temporary
// file, fsync, rename), so FILE.pt is either the whole export or untouched.
//
// This is the only part of dinoctl that links LibTorch (dino_model); the client library and the
// dinoctl binary stay LibTorch-free. The dinoctl-export binary (client/dinoctl_main.cc) injects
// RunExport as DinoctlEnv::export_command; `dinoctl export` execs dinoctl-export.
//
// Thread-safety: one call at a time per context (LibTorch work runs on the calling thread).
// Failure: NOT_FOUND when the job does not exist or has no (such) checkpoint; DATA_LOSS when the
// download does not match its sha256 or the checkpoint's framing is corrupt; FAILED_PRECONDITION
// for a checkpoint the core cannot rebuild; file system errors as the FileSystem returns them.
#pragma once

#include "absl/status/statusor.h"
#include "client/dinoctl_commands.h"

namespace dino::client {

absl::StatusOr<int> RunExport(const CommandContext& ctx, const ExportFlags& flags);

}  // namespace dino::client
