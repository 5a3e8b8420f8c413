#include "server/http_server.h"

#include <httplib.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_credentials.h"
#include "common/logging.h"
#include "server/http_event_stream.h"

namespace dino::server {
namespace {

// Each event stream holds one of httplib's threads; these many are kept for other requests.
constexpr int kThreadsKeptFromStreams = 4;
constexpr size_t kDownloadChunkBytes = 1 << 20;

// httplib's default turns on SO_REUSEPORT, with which a second coordinator would bind the same
// port and share its connections instead of failing; SO_REUSEADDR only allows a quick restart.
void SetSocketOptions(int socket) {
  const int yes = 1;
  setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

HttpServer::HttpServer(const HttpServerOptions& options, Coordinator* coordinator,
                       const TokenTable* tokens)
    : options_(options),
      coordinator_(coordinator),
      api_(coordinator, tokens),
      streams_(options.limits.max_watch_streams_per_client) {
  if (!options.console_dir.empty()) console_.emplace(options.console_dir, options.chart_js_path);
}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              Coordinator* coordinator,
                                                              const TokenTable* tokens) {
  std::string host = "127.0.0.1";
  std::string port_text = options.listen;
  if (const size_t colon = options.listen.rfind(':'); colon != std::string::npos) {
    host = options.listen.substr(0, colon);
    port_text = options.listen.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen must be PORT or HOST:PORT, got \"", options.listen, "\""));
  }
  if (host.empty() || absl::StrContains(host, ':') || absl::StrContains(host, '[')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen host must be an IPv4 address or localhost, got \"", host, "\""));
  }
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (tls && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return absl::InvalidArgumentError("HTTPS needs both --tls-cert and --tls-key");
  }
  if (!tls && !options.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (!tls && !options.insecure && !IsLoopbackAddress(absl::StrCat(host, ":", port))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen ", options.listen,
        " is not a loopback address: serve HTTPS with --tls-cert and --tls-key, or pass "
        "--insecure to serve plaintext behind a TLS-terminating proxy, or listen on loopback"));
  }

  std::unique_ptr<HttpServer> server(new HttpServer(options, coordinator, tokens));
  server->host_ = host;
  server->tls_ = tls;
  if (tls) {
    // httplib says only "invalid" when a file is bad; these name the file and the reason.
    for (const auto& [path, flag] : {std::pair(options.tls_cert_file, "--tls-cert"),
                                     std::pair(options.tls_key_file, "--tls-key"),
                                     std::pair(options.tls_client_ca_file, "--tls-client-ca")}) {
      if (path.empty()) continue;
      if (auto pem = ReadSmallFile(path, flag); !pem.ok()) return pem.status();
    }
    auto ssl = std::make_unique<httplib::SSLServer>(
        options.tls_cert_file.c_str(), options.tls_key_file.c_str(),
        options.tls_client_ca_file.empty() ? nullptr : options.tls_client_ca_file.c_str());
    if (!ssl->is_valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--tls-cert ", options.tls_cert_file, " and --tls-key ", options.tls_key_file,
          " are not a PEM certificate chain and its private key"));
    }
    // httplib allows TLS 1.1; gRPC and current browsers speak 1.2 at least.
    SSL_CTX_set_min_proto_version(ssl->ssl_context(), TLS1_2_VERSION);
    server->server_ = std::move(ssl);
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }

  httplib::Server& http = *server->server_;
  HttpServer* self = server.get();
  const size_t threads = static_cast<size_t>(std::max(options.num_threads, 8));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_socket_options(&SetSocketOptions);
  // One request per connection, as the event streams and downloads need anyway: an idle
  // keep-alive connection would hold a worker thread, and delay Stop(), for its timeout.
  http.set_keep_alive_max_count(1);
  http.set_payload_max_length(kMaxHttpBodyBytes);
  http.set_default_headers({{"Content-Security-Policy", kContentSecurityPolicy},
                            {"X-Content-Type-Options", "nosniff"},
                            {"X-Frame-Options", "DENY"},
                            {"Referrer-Policy", "no-referrer"},
                            // httplib offers ranges on HEAD; Serve() does not serve them.
                            {"Accept-Ranges", "none"}});
  // Methods without a route here would have their body read into memory without a bound.
  http.set_pre_routing_handler([](const httplib::Request& request, httplib::Response& response) {
    static constexpr absl::string_view kRouted[] = {"GET",   "HEAD",   "POST",   "PUT",
                                                    "PATCH", "DELETE", "OPTIONS"};
    if (std::find(std::begin(kRouted), std::end(kRouted), request.method) != std::end(kRouted)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    response.status = 405;
    response.set_content("method not allowed\n", "text/plain; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        response.status = 500;
        response.set_content("internal error\n", "text/plain; charset=utf-8");
      });
  const auto plain = [self](const httplib::Request& request, httplib::Response& response) {
    self->Serve(request, response, nullptr);
  };
  const auto with_body = [self](const httplib::Request& request, httplib::Response& response,
                                const httplib::ContentReader& body) {
    self->Serve(request, response, &body);
  };
  http.Get(".*", plain);  // GET and HEAD.
  http.Options(".*", plain);
  http.Post(".*", with_body);
  http.Put(".*", with_body);
  http.Patch(".*", with_body);
  http.Delete(".*", with_body);

  errno = 0;
  const int bound =
      port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", options.listen,
                                               errno != 0 ? ": " : "",
                                               errno != 0 ? std::strerror(errno) : ""));
  }
  server->port_ = bound;
  server->listener_ = std::thread([self] {
    if (!self->server_->listen_after_bind() && !self->stopping_) {
      DINO_LOG(WARNING) << "http: the listener on " << self->url() << " stopped accepting";
    }
    self->listener_ended_ = true;
  });
  // httplib's stop() does nothing until its loop has started, so Stop() could otherwise miss it.
  while (!http.is_running() && !server->listener_ended_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  DINO_LOG(INFO) << "serving the JSON API" << (server->console_ ? " and the web console" : "")
                 << " on " << server->url() << "/";
  return server;
}

std::string HttpServer::url() const {
  return absl::StrCat(tls_ ? "https://" : "http://", host_, ":", port_);
}

void HttpServer::Stop() {
  if (server_ == nullptr) return;
  stopping_ = true;  // The event streams notice within a second.
  server_->stop();
  if (listener_.joinable()) listener_.join();  // Also joins the worker threads.
  server_.reset();
  port_ = 0;
}

void HttpServer::Serve(const httplib::Request& in, httplib::Response& out,
                       const httplib::ContentReader* body) {
  // Ranges are not served: a checkpoint is read and verified from its first byte, and a part of
  // a JSON body is of no use. Dropping the parsed ranges makes httplib send the whole body with
  // 200. The request is httplib's own non-const object, so writing it is defined.
  const_cast<httplib::Request&>(in).ranges.clear();

  HttpRequest request;
  request.method = in.method;
  request.path = in.path;  // Percent-decoded by httplib.
  if (const size_t q = in.target.find('?'); q != std::string::npos) {
    request.query = in.target.substr(q + 1);
  }
  request.remote = in.remote_addr;
  for (const auto& [name, value] : in.headers) {
    request.headers.emplace(absl::AsciiStrToLower(name), value);
  }
  // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3); httplib
  // would read one until the client closes, so it is not asked to.
  if (body != nullptr && (in.has_header("Content-Length") || in.has_header("Transfer-Encoding"))) {
    // httplib bounds a body by its Content-Length only (set_payload_max_length); a chunked one
    // is bounded here as it arrives.
    bool too_large = in.is_multipart_form_data();
    const bool read = !too_large && (*body)([&](const char* data, size_t size) {
      if (request.body.size() + size > kMaxHttpBodyBytes) {
        too_large = true;
        return false;
      }
      request.body.append(data, size);
      return true;
    });
    if (too_large || (!read && out.status == 413)) {
      HttpResponse response = HttpError(
          absl::InvalidArgumentError(absl::StrCat("body over ", kMaxHttpBodyBytes, " bytes")),
          "body");
      response.status = 413;
      Send(std::move(response), out);
      return;
    }
    if (!read) {
      HttpResponse response = HttpError(absl::InvalidArgumentError("unreadable body"), "body");
      Send(std::move(response), out);
      return;
    }
  }

  if (absl::StartsWith(request.path, "/api/")) {
    Send(api_.Handle(request), out);
    return;
  }
  const bool head = request.method == "HEAD";
  HttpResponse response;
  if (request.method != "GET" && !head) {
    response.status = 405;
    response.content_type = "text/plain; charset=utf-8";
    response.body = "only GET and HEAD\n";
    response.headers.emplace_back("Allow", "GET, HEAD");
  } else if (console_.has_value() && (request.path == "/" || request.path == "/console")) {
    response.status = 302;
    response.content_type = "text/plain; charset=utf-8";
    response.headers.emplace_back("Location", "/console/");
  } else if (console_.has_value() && absl::StartsWith(request.path, "/console/")) {
    response = console_->Get(absl::string_view(request.path).substr(strlen("/console/")));
  } else {
    response.status = 404;
    response.content_type = "text/plain; charset=utf-8";
    response.body = "not found\n";
  }
  Send(std::move(response), out);
}

void HttpServer::Send(HttpResponse response, httplib::Response& out) {
  if (response.event_stream.has_value()) {
    const int max_streams = std::max(options_.num_threads, 8) - kThreadsKeptFromStreams;
    const std::string client = response.event_stream->client;
    absl::Status admitted = streams_.Acquire(client);
    if (admitted.ok() && open_streams_.fetch_add(1) >= max_streams) {
      open_streams_.fetch_sub(1);
      streams_.Release(client);
      admitted = absl::UnavailableError(
          absl::StrCat("this server already serves ", max_streams, " event streams"));
    }
    if (!admitted.ok()) {
      Send(HttpError(admitted), out);
      return;
    }
    response.headers.emplace_back("X-Accel-Buffering", "no");
  }
  out.status = response.status;
  for (const auto& [name, value] : response.headers) out.set_header(name, value);

  if (response.blob != nullptr && response.blob->size() > 0) {
    // A corrupt blob fails before its last chunk: httplib closes the connection short of
    // Content-Length, so no client takes it for a whole file.
    std::shared_ptr<BlobReader> blob = std::move(response.blob);
    out.set_content_provider(
        static_cast<size_t>(blob->size()), response.content_type,
        [blob](size_t offset, size_t length, httplib::DataSink& sink) {
          if (offset != static_cast<size_t>(blob->position())) return false;  // Sequential.
          absl::StatusOr<std::string> chunk = blob->Next(std::min(length, kDownloadChunkBytes));
          if (!chunk.ok() || chunk->empty()) {
            DINO_LOG(WARNING) << "http: a checkpoint download stopped: "
                              << (chunk.ok() ? absl::DataLossError("short") : chunk.status());
            return false;
          }
          return sink.write(chunk->data(), chunk->size());
        });
    return;
  }
  if (response.event_stream.has_value()) {
    // Runs on the worker thread after the headers are sent; one chunk per event, written (and so
    // flushed) as it comes. The releaser runs when httplib drops the response, streamed or not
    // (a HEAD request never streams).
    const EventStreamStart start = *response.event_stream;
    out.set_chunked_content_provider(
        response.content_type,
        [this, start](size_t /*offset*/, httplib::DataSink& sink) {
          EventStreamOptions stream_options;
          stream_options.max_lag_events = options_.limits.max_watch_lag_events;
          absl::Status ended = StreamJobEvents(
              coordinator_, start, stream_options,
              [&sink](absl::string_view data) {
                return data.empty() || sink.write(data.data(), data.size());
              },
              [this] { return stopping_.load(); });
          DINO_LOG(DEBUG) << "http: event stream of " << start.job_id << " ended: " << ended;
          if (absl::IsCancelled(ended)) return false;  // The client went away.
          sink.done();
          return true;
        },
        [this, client = start.client](bool /*success*/) {
          open_streams_.fetch_sub(1);
          streams_.Release(client);
        });
    return;
  }
  out.set_content(response.body, response.content_type);
}

}  // namespace dino::server
