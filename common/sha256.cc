#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "common/logging.h"

namespace dino {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

namespace {
void CheckOk(int rc, const char* what) {
  if (rc != 1) {
    DINO_LOG(ERROR) << "OpenSSL " << what << " failed";
    std::abort();
  }
}
}  // namespace

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr) CheckOk(0, "EVP_MD_CTX_new");
  CheckOk(EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(absl::string_view data) {
  CheckOk(EVP_DigestUpdate(impl_->ctx, data.data(), data.size()), "EVP_DigestUpdate");
}

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  CheckOk(EVP_DigestFinal_ex(impl_->ctx, digest, &length), "EVP_DigestFinal_ex");
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

std::string Sha256::Of(absl::string_view data) {
  Sha256 hash;
  hash.Update(data);
  return hash.HexDigest();
}

}  // namespace dino
