// FailureKind: what went wrong in a run, attached to its failing Status as a typed payload where
// the failure is detected, so that the worker classifies failures (FailureReason: retried or not)
// by value and never by the wording of a message.
//
// The payload (type URL kFailureKindPayload) holds the enum's number in decimal; the numbers are
// stable. The innermost kind wins: WithFailureKind leaves a kind already attached alone, so a
// non-finite loss the Trainer tagged stays one when the run tags its failure as a training one.
//
// Thread-safety: stateless. Failure: none; a Status without the payload has kind kUnknown.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace dino {

enum class FailureKind : int {
  kUnknown = 0,
  kData = 1,           // Opening or reading the dataset.
  kCheckpoint = 2,     // The resume checkpoint (download, verification, loading).
  kConfig = 3,         // The training config or the job spec it came from.
  kTrain = 4,          // A step, a collective or a callback.
  kNonFiniteLoss = 5,  // The Trainer saw a NaN or infinite loss.
  // The coordinator refused a checkpoint over one of its limits (--max-checkpoint-bytes,
  // --max-upload-chunk-bytes); sending it again can never succeed.
  kCoordinatorLimit = 6,
};

inline constexpr char kFailureKindPayload[] = "type.dinotrain.dev/dino.FailureKind";

inline FailureKind GetFailureKind(const absl::Status& status) {
  auto payload = status.GetPayload(kFailureKindPayload);  // absl::optional on Debian's Abseil.
  int value = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &value) || value < 0 ||
      value > static_cast<int>(FailureKind::kCoordinatorLimit)) {
    return FailureKind::kUnknown;
  }
  return static_cast<FailureKind>(value);
}

// `status` with `kind` attached, unless it is OK or already has a kind.
inline absl::Status WithFailureKind(absl::Status status, FailureKind kind) {
  if (!status.ok() && GetFailureKind(status) == FailureKind::kUnknown) {
    status.SetPayload(kFailureKindPayload, absl::Cord(std::to_string(static_cast<int>(kind))));
  }
  return status;
}

}  // namespace dino
