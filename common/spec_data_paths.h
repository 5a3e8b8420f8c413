// The one list of a JobSpec's data paths checked against the data roots: the coordinator checks
// them at submit (server/limits.cc) and the worker again before reading (worker/agent).
//
// Header-only so that dino_common needs no protobuf; include it only from targets that link
// dino_proto. Thread-safety: a free function. Failure: the first path outside the roots, as
// PathConfinement::Check reports it (naming the field); OK when `roots` is unconfined.
#pragma once

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "common/path_confinement.h"
#include "common/status_macros.h"
#include "dino/v1/job.pb.h"

namespace dino {

inline absl::Status CheckSpecDataPaths(const dino::v1::JobSpec& spec,
                                       const PathConfinement& roots) {
  if (!roots.confined()) return absl::OkStatus();
  const auto& d = spec.data();
  const std::pair<const char*, const std::string*> paths[] = {
      {"data.path", &d.path()},
      {"data.labels_path", &d.labels_path()},
      {"data.eval_path", &d.eval_path()},
      {"data.eval_labels_path", &d.eval_labels_path()}};
  for (const auto& [field, path] : paths) {
    if (!path->empty()) DINO_RETURN_IF_ERROR(roots.Check(field, *path).status());
  }
  return absl::OkStatus();
}

}  // namespace dino
