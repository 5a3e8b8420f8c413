// The one list of a JobSpec's data paths checked against the data roots: the coordinator checks
// them at submit (server/limits.cc) and the worker again before reading (worker/agent).
//
// Thread-safety: a free function. Failure: the first path outside the roots, as
// PathConfinement::Check reports it (naming the field); OK when `roots` is unconfined.
#pragma once

#include "absl/status/status.h"
#include "common/path_confinement.h"
#include "dino/v1/job.pb.h"

namespace dino::spec {

absl::Status CheckSpecDataPaths(const dino::v1::JobSpec& spec, const PathConfinement& roots);

}  // namespace dino::spec
