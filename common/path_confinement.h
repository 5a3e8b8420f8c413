// PathConfinement: keeps user-supplied data paths (job spec data.path, data.labels_path,
// data.eval_path, data.eval_labels_path) under a set of allowed root directories.
//
// A path is accepted when it is absolute, has no "." or ".." component (repeated slashes are
// harmless and collapsed), and its resolved form lies under (or is) one of the roots. Resolution
// follows symlinks with realpath(3) on the longest prefix that exists on this machine; the missing
// rest is appended as written (it has no ".." to climb with). So a symlink inside a root that
// points outside it is an escape, a root that is itself a symlink is compared by its target, and
// a coordinator that does not mount the data still checks what it can see; the worker, which does
// mount it, checks again before reading (worker/agent).
//
// Roots are resolved the same way once, at Create. An unconfined instance (no roots) accepts any
// path: the coordinator uses it only when it listens on loopback (see server/main.cc).
//
// Limits: a path checked here can still be swapped for a symlink afterwards (a TOCTOU window);
// confinement is meant to stop a submitter from naming another tenant's files, not to defend
// against someone who can already write inside a root. Files inside an image folder are checked
// one by one when the folder is opened (worker/data, ImageFolderOptions.roots) and then read
// through their resolved paths.
//
// Thread-safety: immutable after Create; Check is safe from any thread.
// Failure: Create returns INVALID_ARGUMENT for an empty or relative root. Check returns
// INVALID_ARGUMENT naming the field, the path and the roots, e.g.
//   data.path "/etc/passwd" must lie under one of the data roots [/data, /scratch]
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dino {

class PathConfinement {
 public:
  // Accepts every path.
  static PathConfinement Unconfined() { return PathConfinement(); }
  // Roots must be absolute; each is resolved (see above). An empty list is INVALID_ARGUMENT:
  // use Unconfined() to mean "no confinement".
  static absl::StatusOr<PathConfinement> Create(const std::vector<std::string>& roots);
  // Parses "DIR[,DIR...]" (empty items are skipped) and calls Create.
  static absl::StatusOr<PathConfinement> FromFlag(absl::string_view comma_separated_roots);

  bool confined() const { return !roots_.empty(); }
  const std::vector<std::string>& roots() const { return roots_; }
  // "[/a, /b]", for messages and logs.
  std::string RootsText() const;

  // OK when `path` may be read (see above); `field` names it in the error. The resolved path is
  // returned so that callers may open exactly what was checked.
  absl::StatusOr<std::string> Check(absl::string_view field, absl::string_view path) const;

 private:
  PathConfinement() = default;
  std::vector<std::string> roots_;  // Resolved, without a trailing "/" (except "/" itself).
};

// Resolves `path` (absolute, no "."/".." components) as described above. Exposed for tests.
absl::StatusOr<std::string> ResolveExistingPrefix(absl::string_view path);

}  // namespace dino
