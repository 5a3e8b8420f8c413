// Export of the teacher backbone as a file that Python's `torch.load(path)` returns as a dict of
// tensors with the reference key names (cls_token, pos_embed, patch_embed.proj.weight,
// blocks.0.norm1.weight, blocks.0.attn.qkv.weight, ..., norm.weight), loadable with strict=True
// into the reference VisionTransformer (or timm's). Written with torch::pickle_save, the zip
// format torch.save uses.
//
// Thread-safety: call from the thread that owns the Trainer / module.
// Failure: file system errors as the FileSystem returns them; checkpoint errors as
// LoadCheckpointBytes returns them (DATA_LOSS, FAILED_PRECONDITION); LibTorch errors via TorchCall.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_system.h"
#include "worker/dino/trainer.h"
#include "worker/dino/vit.h"

namespace dino {

// The backbone's state dict (CPU float32 tensors, reference key names) in torch.save format.
absl::StatusOr<std::string> ExportBackboneBytes(const VisionTransformer& backbone);

// Writes the Trainer's teacher backbone atomically to `path`.
absl::Status ExportTeacherBackbone(const Trainer& trainer, FileSystem* fs, const std::string& path);

// The export bytes of the teacher stored in a checkpoint (rebuilds the model from the stored
// config on the CPU).
absl::StatusOr<std::string> ExportTeacherBackboneFromCheckpoint(absl::string_view checkpoint,
                                                                absl::string_view source);

}  // namespace dino
