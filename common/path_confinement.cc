#include "common/path_confinement.h"

#include <climits>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dino {
namespace {

// Lexical checks before anything touches the disk. Returns "" when fine, else the reason.
std::string LexicalProblem(absl::string_view path) {
  if (path.empty()) return "is empty";
  if (path.front() != '/') return "must be an absolute path";
  if (path.find('\0') != absl::string_view::npos) return "contains a NUL byte";
  if (path.size() >= PATH_MAX) return absl::StrCat("is longer than ", PATH_MAX - 1, " bytes");
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == "..") return "must not contain a \"..\" component";
    if (part == ".") return "must not contain a \".\" component";
  }
  return "";
}

bool IsUnder(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path == root ||
         (absl::StartsWith(path, root) && path.size() > root.size() && path[root.size()] == '/');
}

}  // namespace

absl::StatusOr<std::string> ResolveExistingPrefix(absl::string_view path) {
  if (std::string problem = LexicalProblem(path); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" ", problem));
  }
  std::string prefix;  // `path` with repeated slashes collapsed and no trailing slash.
  for (char c : path) {
    if (c != '/' || prefix.empty() || prefix.back() != '/') prefix.push_back(c);
  }
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  std::string missing;  // The components that do not exist, with a leading '/'.
  while (true) {
    char resolved[PATH_MAX];
    if (::realpath(prefix.c_str(), resolved) != nullptr) {
      std::string out = resolved;
      if (out == "/" && !missing.empty()) return missing;
      return out + missing;
    }
    // Not there (or unreadable): try the parent; the rest is appended as written.
    const size_t slash = prefix.rfind('/');
    if (slash == 0 && prefix.size() == 1) return std::string(path);  // realpath("/") failed?
    missing = prefix.substr(slash) + missing;
    prefix = slash == 0 ? "/" : prefix.substr(0, slash);
  }
}

absl::StatusOr<PathConfinement> PathConfinement::Create(const std::vector<std::string>& roots) {
  if (roots.empty()) {
    return absl::InvalidArgumentError("data roots: at least one directory is required");
  }
  PathConfinement confinement;
  for (const std::string& root : roots) {
    absl::StatusOr<std::string> resolved = ResolveExistingPrefix(root);
    if (!resolved.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("data root \"", root, "\": ", resolved.status().message()));
    }
    confinement.roots_.push_back(*std::move(resolved));
  }
  return confinement;
}

absl::StatusOr<PathConfinement> PathConfinement::FromFlag(absl::string_view comma_separated_roots) {
  std::vector<std::string> roots;
  for (absl::string_view item : absl::StrSplit(comma_separated_roots, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) roots.emplace_back(item);
  }
  return Create(roots);
}

std::string PathConfinement::RootsText() const {
  return absl::StrCat("[", absl::StrJoin(roots_, ", "), "]");
}

absl::StatusOr<std::string> PathConfinement::Check(absl::string_view field,
                                                   absl::string_view path) const {
  if (!confined()) return std::string(path);
  if (std::string problem = LexicalProblem(path); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " \"", path, "\" ", problem,
                                                   " under one of the data roots ", RootsText()));
  }
  absl::StatusOr<std::string> resolved = ResolveExistingPrefix(path);
  if (!resolved.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", resolved.status().message()));
  }
  for (const std::string& root : roots_) {
    if (IsUnder(*resolved, root)) return resolved;
  }
  const std::string via = *resolved == path ? "" : absl::StrCat(" (resolves to ", *resolved, ")");
  return absl::InvalidArgumentError(absl::StrCat(
      field, " \"", path, "\"", via, " must lie under one of the data roots ", RootsText()));
}

}  // namespace dino
