#include "server/http_server.h"

#include <civetweb.h>

#include <cstring>
#include <algorithm>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_credentials.h"
#include "common/logging.h"
#include "server/http_event_stream.h"

namespace dino::server {
namespace {

// Each event stream holds one of civetweb's threads; these many are kept for other requests.
constexpr int kThreadsKeptFromStreams = 4;
constexpr size_t kDownloadChunkBytes = 1 << 20;

// civetweb reports why a bind failed through its log callback on the thread calling mg_start2.
thread_local std::string* startup_log = nullptr;

int LogMessage(const mg_connection* /*connection*/, const char* message) {
  if (startup_log != nullptr) {
    if (!startup_log->empty()) startup_log->append("; ");
    startup_log->append(message);
  } else {
    DINO_LOG(WARNING) << "http: " << message;
  }
  return 1;
}

bool WriteAll(mg_connection* connection, absl::string_view data) {
  return data.empty() || mg_write(connection, data.data(), data.size()) > 0;
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
        "--http-listen host must be an IPv4 address or localhost (this civetweb has no IPv6), "
        "got \"", host, "\""));
  }
  if (!IsLoopbackAddress(absl::StrCat(host, ":", port)) && !options.insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen ", options.listen,
        " is not a loopback address: this listener serves plaintext only (Debian's civetweb "
        "1.15 crashes on TLS connections with OpenSSL 3), so serve it behind a TLS-terminating "
        "proxy and pass --insecure, or listen on loopback"));
  }

  std::unique_ptr<HttpServer> server(new HttpServer(options, coordinator, tokens));
  server->host_ = host;
  static std::once_flag once;
  // Never undone with mg_exit_library: the /metrics server may share the library.
  std::call_once(once, [] { mg_init_library(0); });

  const std::string address = absl::StrCat(host, ":", port);
  const std::string threads = std::to_string(std::max(options.num_threads, 8));
  const char* civet_options[] = {"listening_ports", address.c_str(), "num_threads",
                                 threads.c_str(),   "request_timeout_ms", "30000",
                                 nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.log_message = &LogMessage;
  mg_init_data init = {&callbacks, server.get(), civet_options};
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error = {&error_code, error_text, sizeof(error_text)};
  std::string log;
  startup_log = &log;
  server->context_ = mg_start2(&init, &error);
  startup_log = nullptr;
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", options.listen, ": ",
                                               error_text, log.empty() ? "" : ": ", log));
  }
  mg_set_request_handler(server->context_, "/", &HttpServer::HandleRequest, server.get());
  mg_server_port ports[1];
  if (mg_get_server_ports(server->context_, 1, ports) != 1) {
    return absl::InternalError(absl::StrCat("HTTP server on ", address, " reports no port"));
  }
  server->port_ = ports[0].port;
  DINO_LOG(INFO) << "serving the JSON API" << (server->console_ ? " and the web console" : "")
                 << " on " << server->url() << "/";
  return server;
}

std::string HttpServer::url() const {
  return absl::StrCat("http://", host_, ":", port_);
}

void HttpServer::Stop() {
  if (context_ == nullptr) return;
  stopping_ = true;  // The event streams notice within a second.
  mg_stop(context_);
  context_ = nullptr;
  port_ = 0;
}

int HttpServer::HandleRequest(mg_connection* connection, void* self) {
  static_cast<HttpServer*>(self)->Serve(connection);
  return 1;
}

void HttpServer::Serve(mg_connection* connection) {
  const mg_request_info* info = mg_get_request_info(connection);
  HttpRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri != nullptr ? info->local_uri : "";
  request.query = info->query_string != nullptr ? info->query_string : "";
  request.remote = info->remote_addr;
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers[absl::AsciiStrToLower(info->http_headers[i].name)] =
        info->http_headers[i].value != nullptr ? info->http_headers[i].value : "";
  }
  const bool head = request.method == "HEAD";

  if (absl::StartsWith(request.path, "/api/")) {
    if (info->content_length > static_cast<long long>(kMaxHttpBodyBytes)) {
      HttpResponse response = HttpError(
          absl::InvalidArgumentError(absl::StrCat("body over ", kMaxHttpBodyBytes, " bytes")),
          "body");
      response.status = 413;
      Send(connection, std::move(response), false);
      return;
    }
    char buffer[1024];
    int n = 0;
    while (request.body.size() <= kMaxHttpBodyBytes &&
           (n = mg_read(connection, buffer, sizeof(buffer))) > 0) {
      request.body.append(buffer, static_cast<size_t>(n));
    }
    Send(connection, api_.Handle(request), false);
    return;
  }
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
  Send(connection, std::move(response), head);
}

void HttpServer::Send(mg_connection* connection, HttpResponse response, bool head) {
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
      Send(connection, HttpError(admitted), false);
      return;
    }
    response.headers.emplace_back("X-Accel-Buffering", "no");
  }
  std::string headers = absl::StrCat(
      "HTTP/1.1 ", response.status, " ", mg_get_response_code_text(connection, response.status),
      "\r\nContent-Type: ", response.content_type,
      "\r\nContent-Security-Policy: ", kContentSecurityPolicy,
      "\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
      "Referrer-Policy: no-referrer\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&headers, name, ": ", value, "\r\n");
  }
  if (response.blob != nullptr) {
    absl::StrAppend(&headers, "Content-Length: ", response.blob->size(), "\r\n");
  } else if (!response.event_stream.has_value()) {
    absl::StrAppend(&headers, "Content-Length: ", response.body.size(), "\r\n");
  }
  headers += "Connection: close\r\n\r\n";
  if (!WriteAll(connection, headers) || head) return;

  if (response.blob != nullptr) {
    // A corrupt blob fails before its last chunk: the connection closes short of Content-Length,
    // so no client takes it for a whole file.
    while (!response.blob->done()) {
      absl::StatusOr<std::string> chunk = response.blob->Next(kDownloadChunkBytes);
      if (!chunk.ok()) {
        DINO_LOG(WARNING) << "http: a checkpoint download stopped: " << chunk.status();
        return;
      }
      if (!WriteAll(connection, *chunk)) return;
    }
    return;
  }
  if (response.event_stream.has_value()) {
    EventStreamOptions stream_options;
    stream_options.max_lag_events = options_.limits.max_watch_lag_events;
    absl::Status ended = StreamJobEvents(
        coordinator_, *response.event_stream, stream_options,
        [connection](absl::string_view data) { return WriteAll(connection, data); },
        [this] { return stopping_.load(); });
    open_streams_.fetch_sub(1);
    streams_.Release(response.event_stream->client);
    DINO_LOG(DEBUG) << "http: event stream of " << response.event_stream->job_id
                    << " ended: " << ended;
    return;
  }
  WriteAll(connection, response.body);
}

}  // namespace dino::server
