// Pieces of the Prometheus text exposition format 0.0.4 that the registry renders with: value
// formatting and escaping. Exposed so that tests can check them directly.
//
// Thread-safety: stateless. Failure: never fails.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace dino {
namespace metrics {

// The Content-Type of a rendered registry.
inline constexpr char kExpositionContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Shortest text that parses back to `value`, laid out as Go's strconv.FormatFloat(v, 'g', -1, 64):
// "1", "0.25", "1e+06", "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);

// HELP text: backslash and newline escaped.
std::string EscapeHelp(absl::string_view help);

// Label value: backslash, double quote and newline escaped.
std::string EscapeLabelValue(absl::string_view value);

}  // namespace metrics
}  // namespace dino
