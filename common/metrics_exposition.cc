#include "common/metrics_exposition.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace dino {
namespace metrics {
namespace {

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Appends `{name="value",...}`, with `extra` (e.g. le="0.5") last; nothing when there are none.
void AppendLabels(const std::vector<std::string>& names, const LabelValues& values,
                  absl::string_view extra_name, absl::string_view extra_value, std::string* out) {
  if (names.empty() && extra_name.empty()) return;
  out->push_back('{');
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out->push_back(',');
    absl::StrAppend(out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out->push_back(',');
    absl::StrAppend(out, extra_name, "=\"", EscapeLabelValue(extra_value), "\"");
  }
  out->push_back('}');
}

void AppendSample(absl::string_view name, const std::vector<std::string>& label_names,
                  const LabelValues& values, absl::string_view extra_name,
                  absl::string_view extra_value, double value, std::string* out) {
  out->append(name.data(), name.size());
  AppendLabels(label_names, values, extra_name, extra_value, out);
  absl::StrAppend(out, " ", FormatValue(value), "\n");
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Shortest round-trip digits ("%.17g" would print 0.1 as 0.10000000000000001), laid out the way
  // Go's 'g' format does: scientific when the exponent is < -4 or >= 6, fixed otherwise.
  char buffer[64];
  std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string scientific(buffer, result.ptr);
  const int exponent = std::atoi(scientific.c_str() + scientific.find('e') + 1);
  if (exponent < -4 || exponent >= 6) return scientific;
  result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed);
  return std::string(buffer, result.ptr);
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void RenderHeader(const FamilyBase& family, std::string* out) {
  absl::StrAppend(out, "# HELP ", family.name(), " ", EscapeHelp(family.help()), "\n");
  absl::StrAppend(out, "# TYPE ", family.name(), " ", TypeName(family.type()), "\n");
}

void RenderChild(const FamilyBase& family, const LabelValues& values, const Counter& child,
                 std::string* out) {
  AppendSample(family.name(), family.label_names(), values, "", "", child.Value(), out);
}

void RenderChild(const FamilyBase& family, const LabelValues& values, const Gauge& child,
                 std::string* out) {
  AppendSample(family.name(), family.label_names(), values, "", "", child.Value(), out);
}

void RenderChild(const FamilyBase& family, const LabelValues& values, const Histogram& child,
                 std::string* out) {
  const Histogram::Snapshot snapshot = child.Collect();
  const std::string bucket_name = absl::StrCat(family.name(), "_bucket");
  for (size_t i = 0; i < snapshot.cumulative_counts.size(); ++i) {
    const std::string le =
        i < snapshot.upper_bounds.size() ? FormatValue(snapshot.upper_bounds[i]) : "+Inf";
    AppendSample(bucket_name, family.label_names(), values, "le", le,
                 static_cast<double>(snapshot.cumulative_counts[i]), out);
  }
  AppendSample(absl::StrCat(family.name(), "_sum"), family.label_names(), values, "", "",
               snapshot.sum, out);
  AppendSample(absl::StrCat(family.name(), "_count"), family.label_names(), values, "", "",
               static_cast<double>(snapshot.count), out);
}

}  // namespace metrics
}  // namespace dino
