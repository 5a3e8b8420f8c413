// Query strings of the JSON API (server/http_api.h): parsing with bounds, and typed parameters.
//
// Written by hand so that HttpApi takes the raw query and stays independent of the transport
// (tested without one); the bounds apply before anything is decoded. cpp-httplib, which carries
// it now, would parse into a multimap without bounds; civetweb, before it, offered only
// mg_get_var, which cannot list names, so unknown or repeated parameters could not be refused.
//
// Ownership: values. Thread-safety: immutable after Parse. Failure: INVALID_ARGUMENT naming the
// parameter (as HttpQueryError::field) for bad encoding, unknown names, bad values; the whole
// query over kMaxHttpQueryBytes or with more than kMaxHttpQueryParams parameters is refused too.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dino::server {

// A parameter error: the status and the parameter it is about.
struct HttpQueryError {
  absl::Status status;
  std::string field;
};

// Percent-decodes `text` ('+' is a space). False on a malformed escape.
bool PercentDecode(absl::string_view text, std::string* out);

class HttpQuery {
 public:
  // Parses `raw` ("a=1&b=x%20y"); every name must be in `allowed`.
  static bool Parse(absl::string_view raw, const std::vector<absl::string_view>& allowed,
                    size_t max_bytes, size_t max_params, HttpQuery* out, HttpQueryError* error);

  // Every value of `name`, in order.
  std::vector<std::string> All(absl::string_view name) const;
  // Every value of a repeatable `name`, each also split at commas ("a,b&name=c": a, b, c).
  std::vector<std::string> Listed(absl::string_view name) const;
  bool Has(absl::string_view name) const;

  // At most one value, an integer in [min, max]; `fallback` when absent.
  bool Int(absl::string_view name, int64_t min, int64_t max, int64_t fallback, int64_t* out,
           HttpQueryError* error) const;
  // At most one value: true/false/1/0; `fallback` when absent.
  bool Bool(absl::string_view name, bool fallback, bool* out, HttpQueryError* error) const;
  // At most one value, at most `max_bytes` long; `fallback` when absent.
  bool String(absl::string_view name, size_t max_bytes, std::string fallback, std::string* out,
              HttpQueryError* error) const;

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

}  // namespace dino::server
