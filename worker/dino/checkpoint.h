// Checkpoint file format and helpers. The Trainer's CheckpointBytes / SaveCheckpoint /
// LoadCheckpointBytes / LoadCheckpoint (trainer.h) are implemented on top of these.
//
// A checkpoint is one file: the integrity frame of checkpoint_frame.h (magic, format version,
// payload length, SHA-256 of the payload), then the payload. The payload is a torch::serialize
// archive holding: the config ("config", key=value lines), the student and teacher (all parameters
// and buffers), the AdamW moments and step counts of both groups, the center, the global step, the
// default CPU generator's and the drop-path generator's states, and the caller's CheckpointExtras
// (loader epoch, step within epoch, loader state). The frame is verified before LibTorch parses
// anything (LibTorch's unpickler can crash on a mutated archive); writes go through
// WriteFileAtomically (tmp + fsync + rename).
//
// Thread-safety: stateless functions.
// Failure: DATA_LOSS naming the source for a truncated or corrupt file; FAILED_PRECONDITION naming
// the field when the stored architecture differs from the Trainer's config; file system errors as
// the FileSystem returns them.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/dino/checkpoint_frame.h"  // FrameCheckpoint, UnframeCheckpoint
#include "worker/dino/config.h"

namespace dino {

// The TrainConfig stored in a checkpoint (e.g. to build a Trainer before loading it).
absl::StatusOr<TrainConfig> ReadCheckpointConfig(absl::string_view bytes, absl::string_view source);

// OK when `stored` and `current` describe the same architecture; else FAILED_PRECONDITION
// "<source>: model.dim is 32 in the checkpoint but 64 in the config".
absl::Status CheckCompatible(const TrainConfig& stored, const TrainConfig& current,
                             absl::string_view source);

}  // namespace dino
