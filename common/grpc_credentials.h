// gRPC transport credentials from command-line flags, shared by dino-coordinator, dino-worker and
// dinoctl.
//
// Server side: TLS when a certificate and key are given (--tls-cert/--tls-key), and mutual TLS
// when a client CA is given too (--tls-client-ca: every client must present a certificate signed
// by it). Without a certificate the server speaks plaintext, which is allowed only on a loopback
// address (127.0.0.0/8, ::1, localhost, unix sockets) unless `insecure` (--insecure) is set (the
// server then logs a warning).
//
// Client side: TLS that verifies the server against --tls-ca, with an optional client certificate
// and key for mTLS; plaintext when no CA is given.
//
// Ownership: the returned credentials are shared_ptrs owned by the caller. Thread-safety: the
// functions are pure apart from reading the named files, so main() may call them early to check
// its flags. Failure: INVALID_ARGUMENT for
// an inconsistent flag combination (a key without a certificate, a client CA without a server
// certificate), NOT_FOUND/FAILED_PRECONDITION naming a PEM file that cannot be read,
// FAILED_PRECONDITION for plaintext on a non-loopback address without `insecure`. Messages name
// the flags, so main() can print them as they are.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dino {

struct ServerTlsOptions {
  std::string cert_file;       // --tls-cert: PEM certificate chain of the server.
  std::string key_file;        // --tls-key: PEM private key of that certificate.
  std::string client_ca_file;  // --tls-client-ca: require client certificates signed by this CA.
  bool insecure = false;       // --insecure: allow plaintext on a non-loopback address.
};

struct ChannelTlsOptions {
  std::string ca_file;    // --tls-ca: PEM CA that signed the server's certificate.
  std::string cert_file;  // --tls-cert: client certificate for mTLS (optional).
  std::string key_file;   // --tls-key: its private key.
};

// True when `listen` ("host:port", "[v6]:port", "unix:path") only accepts local connections.
// Wildcards (0.0.0.0, [::], an empty host) and every other name are not loopback.
bool IsLoopbackAddress(absl::string_view listen);

// Credentials for a server listening on `listen` (see the file comment for the rules).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options, absl::string_view listen);

// Credentials for a channel to the coordinator.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ChannelTlsOptions& options);

// Reads a whole (small) file such as a PEM certificate or a token; `what` names it in errors,
// e.g. "--tls-ca".
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, absl::string_view what);

}  // namespace dino
