#include "server/console_files.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dino::server {
namespace {

constexpr std::streamoff kMaxFileBytes = std::streamoff{8} << 20;

HttpResponse NotFound(absl::string_view name) {
  HttpResponse response;
  response.status = 404;
  response.content_type = "text/plain; charset=utf-8";
  response.body = absl::StrCat("no console file \"", name.substr(0, 100), "\"\n");
  return response;
}

const char* ContentType(absl::string_view name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  return nullptr;
}

bool IsFlatName(absl::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  }) && !absl::StrContains(name, "..");
}

}  // namespace

std::string FindConsoleDir(const std::string& flag, const char* argv0) {
  if (!flag.empty()) return flag;
  std::error_code error;
  char self[PATH_MAX] = "";
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::filesystem::path exe = n > 0 ? std::filesystem::path(std::string(self, n))
                                    : std::filesystem::path(argv0 != nullptr ? argv0 : "");
  const std::filesystem::path installed =
      exe.parent_path().parent_path() / "share" / "dinotrain" / "console";
  if (std::filesystem::exists(installed / "index.html", error)) return installed.string();
#ifdef DINO_CONSOLE_SOURCE_DIR
  return DINO_CONSOLE_SOURCE_DIR;
#else
  return installed.string();
#endif
}

ConsoleFiles::ConsoleFiles(std::string dir, std::string chart_js_path)
    : dir_(std::move(dir)), chart_js_path_(std::move(chart_js_path)) {}

HttpResponse ConsoleFiles::Get(absl::string_view name) const {
  std::string path;
  const char* type = nullptr;
  if (name == "vendor/chart.js") {
    path = chart_js_path_;
    type = ContentType(name);
  } else {
    if (name.empty()) name = "index.html";
    type = ContentType(name);
    if (!IsFlatName(name) || type == nullptr) return NotFound(name);
    path = absl::StrCat(dir_, "/", name);
  }
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return NotFound(name);
  const std::streamoff size = file.tellg();
  if (size < 0 || size > kMaxFileBytes) {
    HttpResponse response = NotFound(name);
    response.status = 500;
    return response;
  }
  file.seekg(0);
  std::string body(static_cast<size_t>(size), '\0');
  if (!file.read(body.data(), size)) return NotFound(name);
  HttpResponse response;
  response.content_type = type;
  response.body = std::move(body);
  response.headers.emplace_back("Cache-Control", "no-cache");
  return response;
}

}  // namespace dino::server
