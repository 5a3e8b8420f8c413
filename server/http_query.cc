#include "server/http_query.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dino::server {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool Fail(HttpQueryError* error, std::string field, std::string message) {
  error->status = absl::InvalidArgumentError(std::move(message));
  error->field = std::move(field);
  return false;
}

}  // namespace

bool PercentDecode(absl::string_view text, std::string* out) {
  out->clear();
  out->reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size()) return false;
      const int high = HexValue(text[i + 1]);
      const int low = HexValue(text[i + 2]);
      if (high < 0 || low < 0) return false;
      out->push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

bool HttpQuery::Parse(absl::string_view raw, const std::vector<absl::string_view>& allowed,
                      size_t max_bytes, size_t max_params, HttpQuery* out, HttpQueryError* error) {
  out->params_.clear();
  if (raw.size() > max_bytes) {
    return Fail(error, "query",
                absl::StrCat("query string is ", raw.size(), " bytes; at most ", max_bytes));
  }
  if (raw.empty()) return true;
  for (absl::string_view part : absl::StrSplit(raw, '&')) {
    if (part.empty()) continue;
    if (out->params_.size() == max_params) {
      return Fail(error, "query", absl::StrCat("more than ", max_params, " query parameters"));
    }
    const size_t eq = part.find('=');
    std::string name;
    std::string value;
    if (!PercentDecode(part.substr(0, eq), &name)) {
      return Fail(error, "query", "malformed percent-encoding in a parameter name");
    }
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string shown = name.substr(0, 64);
      return Fail(error, shown, absl::StrCat("unknown query parameter \"", shown, "\""));
    }
    if (eq != absl::string_view::npos && !PercentDecode(part.substr(eq + 1), &value)) {
      return Fail(error, name, absl::StrCat(name, ": malformed percent-encoding"));
    }
    out->params_.emplace_back(std::move(name), std::move(value));
  }
  return true;
}

std::vector<std::string> HttpQuery::All(absl::string_view name) const {
  std::vector<std::string> values;
  for (const auto& [key, value] : params_) {
    if (key == name) values.push_back(value);
  }
  return values;
}

std::vector<std::string> HttpQuery::Listed(absl::string_view name) const {
  std::vector<std::string> out;
  for (const std::string& value : All(name)) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      out.emplace_back(part);
    }
  }
  return out;
}

bool HttpQuery::Has(absl::string_view name) const {
  return std::any_of(params_.begin(), params_.end(),
                     [&](const auto& param) { return param.first == name; });
}

bool HttpQuery::String(absl::string_view name, size_t max_bytes, std::string fallback,
                       std::string* out, HttpQueryError* error) const {
  std::vector<std::string> values = All(name);
  if (values.size() > 1) {
    return Fail(error, std::string(name), absl::StrCat(name, " may be given once"));
  }
  if (values.empty()) {
    *out = std::move(fallback);
    return true;
  }
  if (values[0].size() > max_bytes) {
    return Fail(error, std::string(name),
                absl::StrCat(name, " is ", values[0].size(), " bytes; at most ", max_bytes));
  }
  *out = std::move(values[0]);
  return true;
}

bool HttpQuery::Int(absl::string_view name, int64_t min, int64_t max, int64_t fallback,
                    int64_t* out, HttpQueryError* error) const {
  std::string text;
  if (!String(name, 32, "", &text, error)) return false;
  if (!Has(name)) {
    *out = fallback;
    return true;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return Fail(error, std::string(name),
                absl::StrCat(name, " must be an integer in [", min, ", ", max, "]"));
  }
  *out = value;
  return true;
}

bool HttpQuery::Bool(absl::string_view name, bool fallback, bool* out,
                     HttpQueryError* error) const {
  std::string text;
  if (!String(name, 8, "", &text, error)) return false;
  if (!Has(name)) {
    *out = fallback;
    return true;
  }
  if (text == "true" || text == "1") {
    *out = true;
  } else if (text == "false" || text == "0") {
    *out = false;
  } else {
    return Fail(error, std::string(name), absl::StrCat(name, " must be true or false"));
  }
  return true;
}

}  // namespace dino::server
