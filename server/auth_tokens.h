// TokenTable: the coordinator's bearer tokens (--auth-tokens FILE) and the roles they carry.
//
// File format, one entry per line:
//   <sha256 hex of the token> <name> <role>      # a comment
// `#` starts a comment anywhere on a line; blank lines are ignored. Roles: viewer, submitter,
// admin, worker (see auth_interceptor.h for what each may call). A hash is 64 hex digits; the
// same hash twice is an error. Generate one with `printf %s "$TOKEN" | sha256sum`.
//
// Only the SHA-256 of each token is held. Authenticate hashes the presented token and compares it
// with every entry in constant time (CRYPTO_memcmp, no early exit), so neither the match position
// nor the length of a common prefix leaks through timing.
//
// Ownership: a value. Thread-safety: immutable after Parse/Load, so const methods are safe from any
// thread. Failure: Parse/Load return INVALID_ARGUMENT naming the source and the line number of the
// first bad line, FAILED_PRECONDITION when the file cannot be read.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dino::server {

enum class Role { kViewer, kSubmitter, kAdmin, kWorker };

absl::string_view RoleName(Role role);
// "viewer", "submitter", "admin" or "worker"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// Who is calling: the name and role of the token's entry.
struct Principal {
  std::string name;
  Role role = Role::kViewer;
};

class TokenTable {
 public:
  // `source` names the text in errors (the file path).
  static absl::StatusOr<TokenTable> Parse(absl::string_view text, absl::string_view source);
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The entry whose hash equals sha256(token), or nullopt.
  std::optional<Principal> Authenticate(absl::string_view token) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<uint8_t, 32> hash;
    Principal principal;
  };
  std::vector<Entry> entries_;
};

}  // namespace dino::server
