// Status propagation helpers shared by every dinotrain module.
//
// Abseil 20220623 ships absl::Status/StatusOr but not the RETURN_IF_ERROR / ASSIGN_OR_RETURN
// helpers, so this header provides the two macros the codebase uses, plus a helper that prefixes
// an error message with context while keeping its code.
//
// Thread-safety: stateless. Failure: never fails by itself.
#pragma once

#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dino {

// Returns `status` with "context: " prepended to its message; OK stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace dino

#define DINO_STATUS_CONCAT_INNER_(a, b) a##b
#define DINO_STATUS_CONCAT_(a, b) DINO_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function when not OK.
#define DINO_RETURN_IF_ERROR(expr)                                   \
  do {                                                               \
    ::absl::Status dino_status_ = (expr);                            \
    if (!dino_status_.ok()) return dino_status_;                     \
  } while (false)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its error status.
#define DINO_ASSIGN_OR_RETURN(lhs, rexpr) \
  DINO_ASSIGN_OR_RETURN_IMPL_(DINO_STATUS_CONCAT_(dino_statusor_, __LINE__), lhs, rexpr)
#define DINO_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return statusor.status();           \
  lhs = std::move(statusor).value()
