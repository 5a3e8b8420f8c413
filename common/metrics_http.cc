#include "common/metrics_http.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/metrics_exposition.h"

namespace dino {
namespace metrics {
namespace {

// civetweb reports why a bind failed through its log callback, on the thread that calls
// mg_start2; Start() points this at a string to collect that reason for its Status.
thread_local std::string* startup_log = nullptr;

int LogCivetwebMessage(const struct mg_connection* /*connection*/, const char* message) {
  if (startup_log != nullptr) {
    if (!startup_log->empty()) startup_log->append("; ");
    startup_log->append(message);
  } else {
    DINO_LOG(WARNING) << "metrics http: " << message;
  }
  return 1;  // handled: civetweb writes nothing itself
}

void InitCivetwebOnce() {
  static std::once_flag once;
  // Never undone with mg_exit_library: other servers in the process may still run.
  std::call_once(once, [] { mg_init_library(0); });
}

std::string ListeningAddress(const std::string& host, int port) {
  if (host.empty()) return std::to_string(port);
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

void SendResponse(struct mg_connection* connection, int code, const char* reason,
                  const char* extra_headers, const std::string& body, bool with_body) {
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: "
            "close\r\n\r\n",
            code, reason, code == 200 ? kExpositionContentType : "text/plain; charset=utf-8",
            body.size(), extra_headers);
  if (with_body && !body.empty()) mg_write(connection, body.data(), body.size());
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(const Registry* registry) : registry_(registry) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::Status MetricsHttpServer::Start(const std::string& host, int port) {
  if (context_ != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics http server already listening on port ", port_));
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics port out of range: ", port));
  }
  InitCivetwebOnce();
  const std::string address = ListeningAddress(host, port);
  const char* options[] = {"listening_ports",    address.c_str(), "num_threads", "2",
                           "request_timeout_ms", "10000",         nullptr};
  struct mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.log_message = &LogCivetwebMessage;
  struct mg_init_data init = {&callbacks, this, options};
  char error_text[256] = "";
  unsigned error_code = 0;
  struct mg_error_data error = {&error_code, error_text, sizeof(error_text)};

  std::string log;
  startup_log = &log;
  context_ = mg_start2(&init, &error);
  startup_log = nullptr;
  if (context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("metrics http server cannot listen on ", address,
                                               " (port in use or not permitted): ", error_text,
                                               log.empty() ? "" : ": ", log));
  }
  mg_set_request_handler(context_, "/metrics$", &MetricsHttpServer::HandleMetrics, this);

  struct mg_server_port ports[1];
  if (mg_get_server_ports(context_, 1, ports) != 1) {
    Stop();
    return absl::InternalError(
        absl::StrCat("metrics http server on ", address, " reports no listening port"));
  }
  port_ = ports[0].port;
  DINO_LOG(INFO) << "serving metrics on " << ListeningAddress(host, port_) << "/metrics";
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  if (context_ == nullptr) return;
  mg_stop(context_);  // joins the master and worker threads
  context_ = nullptr;
  port_ = 0;
}

int MetricsHttpServer::HandleMetrics(struct mg_connection* connection, void* server) {
  const struct mg_request_info* request = mg_get_request_info(connection);
  const bool is_get = std::strcmp(request->request_method, "GET") == 0;
  const bool is_head = std::strcmp(request->request_method, "HEAD") == 0;
  if (!is_get && !is_head) {
    SendResponse(connection, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                 "only GET and HEAD are supported\n", true);
    return 405;
  }
  const std::string body = static_cast<MetricsHttpServer*>(server)->registry_->Render();
  SendResponse(connection, 200, "OK", "", body, is_get);
  return 200;
}

}  // namespace metrics
}  // namespace dino

// Debian's civetweb 1.15 is built with USE_STACK_SIZE=102400: it starts every thread with a 100 KiB
// stack. glibc carves the static TLS of all loaded libraries out of each thread's stack, and in
// dino-worker (LibTorch, OpenBLAS 60 KiB, glog 30 KiB) that alone exceeds 100 KiB, so civetweb's
// pthread_create failed with EINVAL and the worker could not serve /metrics. civetweb has no
// runtime option for it; this definition (the executable's symbol interposes on libc's for every
// library in the process) raises requests below 1 MiB to 1 MiB and passes the rest through.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stack_size) {
  using Fn = int (*)(pthread_attr_t*, size_t);
  static const Fn libc_setstacksize =
      reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  constexpr size_t kMinStackBytes = size_t{1} << 20;
  return libc_setstacksize(attr, std::max(stack_size, kMinStackBytes));
}
