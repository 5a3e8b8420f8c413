// HttpServer: dino-coordinator's HTTP listener (--http-listen): the JSON API (server/http_api.h),
// its event streams (server/http_event_stream.h), checkpoint downloads and the web console's
// static files (server/console_files.h), over civetweb (Debian's libcivetweb-dev, as /metrics).
//
// This file is transport only: it turns civetweb's request into an HttpRequest, adds the security
// headers to every response (kContentSecurityPolicy, nosniff, no framing, no referrer) and
// streams the bodies that are streams.
//
// It is a listener of its own rather than a route on the /metrics server: /metrics is scraped by
// Prometheus in plaintext without tokens on all interfaces, while this one carries tokens, so it
// listens on loopback unless told otherwise. It serves plaintext only: Debian 12's civetweb 1.15
// segfaults on every TLS connection with OpenSSL 3 (it calls SSL_get_peer_certificate, which
// OpenSSL 3 no longer exports, through a null pointer). A non-loopback address therefore needs
// --insecure, meaning that a TLS-terminating proxy sits in front; serving HTTPS here waits for a
// civetweb that works with OpenSSL 3.
//
// Ownership: borrows the Coordinator and the TokenTable (null: auth off), which must outlive it;
// owns civetweb's threads. Stop() (also run by the destructor) ends the event streams within
// about a second and joins the threads.
// Thread-safety: Start/Stop from one thread; requests are served on civetweb's threads.
// Failure: Start returns INVALID_ARGUMENT for a malformed address or a non-loopback one without
// insecure, UNAVAILABLE when the address cannot be bound.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/auth_tokens.h"
#include "server/console_files.h"
#include "server/coordinator.h"
#include "server/http_api.h"
#include "server/limits.h"

struct mg_context;
struct mg_connection;

namespace dino::server {

inline constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct HttpServerOptions {
  // "PORT" (loopback), "HOST:PORT"; port 0 picks a free port.
  std::string listen;
  // Allow a non-loopback address (--insecure): plaintext, for a TLS-terminating proxy in front.
  bool insecure = false;
  // The console's files; empty serves no console (the API only).
  std::string console_dir;
  std::string chart_js_path = kDebianChartJs;
  ServerLimits limits;  // max_watch_lag_events and max_watch_streams_per_client.
  int num_threads = 32;
};

class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           Coordinator* coordinator,
                                                           const TokenTable* tokens);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void Stop();
  int port() const { return port_; }
  // "http://127.0.0.1:8080" (with the bound port).
  std::string url() const;

 private:
  HttpServer(const HttpServerOptions& options, Coordinator* coordinator, const TokenTable* tokens);
  static int HandleRequest(mg_connection* connection, void* self);
  void Serve(mg_connection* connection);
  void Send(mg_connection* connection, HttpResponse response, bool head);

  const HttpServerOptions options_;
  Coordinator* const coordinator_;
  HttpApi api_;
  std::optional<ConsoleFiles> console_;
  WatchStreamLimiter streams_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_streams_{0};
  mg_context* context_ = nullptr;
  std::string host_;
  int port_ = 0;
};

}  // namespace dino::server
