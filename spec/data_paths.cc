#include "spec/data_paths.h"

#include <string>
#include <utility>

#include "common/status_macros.h"

namespace dino::spec {

absl::Status CheckSpecDataPaths(const dino::v1::JobSpec& spec, const PathConfinement& roots) {
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

}  // namespace dino::spec
