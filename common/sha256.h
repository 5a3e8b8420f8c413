// Sha256: incremental SHA-256 (OpenSSL's EVP interface) with a lowercase-hex digest, for
// checkpoint uploads and downloads (coordinator, worker and client).
//
// Ownership: a value that owns its EVP context. Thread-safety: one thread at a time per object.
// Failure: OpenSSL failures are not expected for SHA-256; they abort via a CHECK-like log + abort.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace dino {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // The digest of everything passed to Update, as 64 lowercase hex characters. Call once.
  std::string HexDigest();

  static std::string Of(absl::string_view data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dino
