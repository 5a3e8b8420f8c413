// Test certificates made with /usr/bin/openssl: a CA (ca.pem/ca.key), a server certificate for
// localhost and 127.0.0.1 signed by it (server.pem/server.key), a client certificate signed by it
// (client.pem/client.key), and an unrelated CA (other.pem) that signed nothing. EC P-256 keys,
// valid two days: generating all of them takes well under a second.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace dino::server::testing {

// Runs a shell command; true when it exits 0. Its stdout and stderr are appended to `log`.
inline bool Shell(const std::string& command, std::string* log) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return false;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) log->append(buffer.data(), n);
  const int status = pclose(pipe);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Writes the files above into `dir` (which must exist); false with openssl's output in `log`.
inline bool MakeTestCertificates(const std::string& dir, std::string* log) {
  const std::string& d = dir;
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string sign = absl::StrCat(" -CA ", d, "/ca.pem -CAkey ", d,
                                        "/ca.key -CAcreateserial -days 2 -extfile ", d, "/ext");
  return Shell(absl::StrCat("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ", d, "/ext"),
               log) &&
         Shell(absl::StrCat("/usr/bin/openssl req -x509 ", ec, " -keyout ", d, "/ca.key -out ", d,
                            "/ca.pem -days 2 -subj /CN=dino-test-ca"),
               log) &&
         Shell(absl::StrCat("/usr/bin/openssl req ", ec, " -keyout ", d, "/server.key -out ", d,
                            "/server.csr -subj /CN=localhost"),
               log) &&
         Shell(absl::StrCat("/usr/bin/openssl x509 -req -in ", d, "/server.csr -out ", d,
                            "/server.pem", sign),
               log) &&
         Shell(absl::StrCat("/usr/bin/openssl req ", ec, " -keyout ", d, "/client.key -out ", d,
                            "/client.csr -subj /CN=dino-worker"),
               log) &&
         Shell(absl::StrCat("/usr/bin/openssl x509 -req -in ", d, "/client.csr -out ", d,
                            "/client.pem", sign),
               log) &&
         Shell(absl::StrCat("/usr/bin/openssl req -x509 ", ec, " -keyout ", d, "/other.key -out ",
                            d, "/other.pem -days 2 -subj /CN=other-ca"),
               log);
}

}  // namespace dino::server::testing
