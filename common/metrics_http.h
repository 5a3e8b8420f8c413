// Serves a metrics Registry as `GET /metrics` over HTTP, for Prometheus to scrape.
//
// Built on civetweb (Debian's libcivetweb-dev), so it lives in the dino_metrics library and the
// DINO core never links civetweb. The binaries turn it off with `--metrics-port=0` by not
// starting it; Start() itself treats port 0 as "any free port", which tests use.
//
// Ownership: the server borrows the Registry, which must outlive it. It owns civetweb's threads;
// Stop() (also run by the destructor) joins all of them.
//
// Thread-safety: Start, Stop and port() may be called from any thread but not concurrently with
// each other. Requests are served on civetweb's own threads; Registry::Render is thread-safe.
//
// Failure: Start returns UNAVAILABLE naming the address when the port is in use or cannot be bound,
// and FAILED_PRECONDITION when already started. Requests other than GET/HEAD /metrics get 404 or
// 405; nothing in serving can fail the process.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "common/metrics.h"

struct mg_context;
struct mg_connection;

namespace dino {
namespace metrics {

class MetricsHttpServer {
 public:
  explicit MetricsHttpServer(const Registry* registry);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Listens on `host`:`port` ("127.0.0.1", "0.0.0.0", "::1"; "" means every interface). Port 0
  // binds a free port; port() then tells which.
  absl::Status Start(const std::string& host, int port);

  // Stops serving and joins civetweb's threads. Idempotent. Takes up to about 2 s: civetweb's
  // master thread notices the stop request only between polls of its listening socket.
  void Stop();

  // The bound port while running, else 0.
  int port() const { return port_; }

 private:
  static int HandleMetrics(::mg_connection* connection, void* server);

  const Registry* const registry_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace metrics
}  // namespace dino
