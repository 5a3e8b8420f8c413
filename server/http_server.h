// HttpServer: dino-coordinator's HTTP listener (--http-listen): the JSON API (server/http_api.h),
// its event streams (server/http_event_stream.h), checkpoint downloads and the web console's
// static files (server/console_files.h), over HTTPS or plain HTTP with cpp-httplib (Debian's
// libcpp-httplib-dev, linked against OpenSSL 3).
//
// This file is transport only: it turns httplib's request into an HttpRequest, adds the security
// headers to every response (kContentSecurityPolicy, nosniff, no framing, no referrer), bounds
// request bodies (413) and streams the bodies that are streams: event streams chunked, one write
// per event; downloads with a Content-Length, read from disk a chunk at a time.
//
// It is a listener of its own rather than a route on the /metrics server: /metrics is scraped by
// Prometheus in plaintext without tokens on all interfaces, while this one carries tokens. The
// rule is gRPC's (common/grpc_credentials.h): with a certificate and key (--tls-cert/--tls-key,
// the same files) it serves HTTPS on any address, and with a client CA (--tls-client-ca) it asks
// every client for a certificate signed by it, as gRPC does; without them it serves plaintext, on
// loopback only unless `insecure` (--insecure: a TLS-terminating proxy in front). /metrics stays
// on civetweb: Debian 12's civetweb 1.15 crashes on TLS connections with OpenSSL 3, which is why
// this listener does not use it.
//
// Ownership: borrows the Coordinator and the TokenTable (null: auth off), which must outlive it;
// owns httplib's server, its accept thread and its worker threads. Stop() (also run by the
// destructor) ends the event streams within about a second and joins the threads.
// Thread-safety: Start/Stop from one thread; requests are served on httplib's worker threads.
// Failure: Start returns INVALID_ARGUMENT for a malformed address, a non-loopback one without TLS
// or insecure, or a certificate without a key; FAILED_PRECONDITION when the certificate or key
// cannot be loaded; UNAVAILABLE when the address cannot be bound.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/auth_tokens.h"
#include "server/console_files.h"
#include "server/coordinator.h"
#include "server/http_api.h"
#include "server/limits.h"

namespace httplib {
class ContentReader;
struct Request;
struct Response;
class Server;
}  // namespace httplib

namespace dino::server {

inline constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct HttpServerOptions {
  // "PORT" (loopback), "HOST:PORT"; port 0 picks a free port.
  std::string listen;
  // PEM files (--tls-cert, --tls-key): serve HTTPS. Both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA (--tls-client-ca): require client certificates signed by it. Only with a certificate.
  std::string tls_client_ca_file;
  // Allow plaintext on a non-loopback address (--insecure), for a TLS-terminating proxy in front.
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
  // "https://127.0.0.1:8443" or "http://127.0.0.1:8080" (with the bound port).
  std::string url() const;

 private:
  HttpServer(const HttpServerOptions& options, Coordinator* coordinator, const TokenTable* tokens);
  // `body` reads the request body (null for methods without one).
  void Serve(const httplib::Request& request, httplib::Response& response,
             const httplib::ContentReader* body);
  void Send(HttpResponse response, httplib::Response& out);

  const HttpServerOptions options_;
  Coordinator* const coordinator_;
  HttpApi api_;
  std::optional<ConsoleFiles> console_;
  WatchStreamLimiter streams_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_streams_{0};
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;  // Runs httplib's accept loop until Stop().
  std::atomic<bool> listener_ended_{false};
  bool tls_ = false;
  std::string host_;
  int port_ = 0;
};

}  // namespace dino::server
