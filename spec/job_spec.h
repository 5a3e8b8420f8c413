// Job spec defaults and validation: the one place that applies every JobSpec field's default and
// knows its legal range.
//
// ApplyJobSpecDefaults fills every unset field from the table of spec/defaults.h, whose values are
// the defaults documented in job.proto (DINO's where DINO defines one); a model preset other than
// "custom" sets dim/depth/heads from the preset table there. It is idempotent: a spec with
// defaults applied is left as it is.
//
// ValidateJobSpec checks a spec with defaults applied: every field's range, then the cross-field
// rules (local crop below global, patch size divides the global crop, dim divisible by heads,
// scale ranges ordered, world_size fits the device kind, bf16 only on CUDA, evaluation needs a
// labelled eval split, ...), and finally the size of one rank's input batch and of the model
// (kMaxBatchValuesPerRank, kMaxModelParameters), so that no field's upper bound multiplies into a
// terabyte.
//
// Thread-safety: stateless functions.
// Failure: INVALID_ARGUMENT naming the field path and the rule, e.g.
// "optim.batch_size_per_rank must be >= 1, got 0". The first violation found is reported.
#pragma once

#include "absl/status/status.h"
#include "dino/v1/job.pb.h"

namespace dino::spec {

// Largest world_size accepted per device kind: Gloo CPU groups beyond this are not sensible, and
// NCCL groups are bounded by the fleet we target.
inline constexpr int64_t kMaxCpuWorldSize = 256;
inline constexpr int64_t kMaxCudaWorldSize = 1024;
// One rank's input batch (batch x channels x the pixels of all its crops): 2^32 values, 16 GiB in
// float32. DINO's ImageNet setting (64 x 3 x (2x224^2 + 8x96^2)) is 33M.
inline constexpr double kMaxBatchValuesPerRank = 4294967296.0;
// Student parameters (ViT + head); the teacher and two AdamW moments triple that again. ViT-g
// with DINO's head is about 1.2e9.
inline constexpr double kMaxModelParameters = 2e9;

void ApplyJobSpecDefaults(dino::v1::JobSpec* spec);
absl::Status ValidateJobSpec(const dino::v1::JobSpec& spec);

}  // namespace dino::spec
