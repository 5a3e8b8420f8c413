// ConsoleFiles: the web console's static files (server/console/: HTML, JS modules, CSS) and
// Chart.js from Debian's libjs-chart.js, served under /console/.
//
// Only flat names like "app.js" or "console.css" are served from the console directory (so no
// path can leave it), plus "vendor/chart.js", which is the Chart.js file given at construction.
// "" is index.html. Each response names its type, so with nosniff the browser runs only .js files
// as scripts.
//
// Ownership: a value. Thread-safety: immutable; Get reads the file on each call (the console is
// small, and edits show up without a restart). Failure: 404 for a name outside those rules or a
// file that cannot be read; 500 for a file over 8 MiB.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "server/http_api.h"

namespace dino::server {

// Where Debian's libjs-chart.js puts its browser build.
inline constexpr char kDebianChartJs[] = "/usr/share/javascript/chart.js/chart.min.js";

// The console directory: `flag` when set; else share/dinotrain/console beside the executable's
// directory (an installed binary), else the directory CMake compiled in (the source tree).
std::string FindConsoleDir(const std::string& flag, const char* argv0);

class ConsoleFiles {
 public:
  ConsoleFiles(std::string dir, std::string chart_js_path);

  // `name` is the path after "/console/".
  HttpResponse Get(absl::string_view name) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string chart_js_path_;
};

}  // namespace dino::server
