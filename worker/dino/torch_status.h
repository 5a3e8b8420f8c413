// The one seam where LibTorch / c10d exceptions become absl::Status.
//
// LibTorch reports errors by throwing c10::Error (and std::exception subclasses from c10d). No
// exception may cross a dinotrain module boundary, so every call into LibTorch that can throw is
// wrapped here:
//
//   absl::Status s = dino::TorchCall("loading checkpoint " + path, [&] { torch::load(t, path); });
//   absl::StatusOr<torch::Tensor> t = dino::TorchCallOr("forward", [&] { return model(x); });
//
// Mapping: c10d timeouts / closed connections -> ABORTED (a torn-down collective); out-of-memory
// -> RESOURCE_EXHAUSTED; c10::IndexError/ValueError/TypeError -> INVALID_ARGUMENT; anything else
// -> INTERNAL. The message is "<context>: <first line of what()>".
//
// Thread-safety: stateless.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dino {

// Converts the exception currently being handled into a Status. Call only inside a catch block.
absl::Status StatusFromCurrentException(absl::string_view context);

template <typename F>
absl::Status TorchCall(absl::string_view context, F&& f) {
  try {
    std::forward<F>(f)();
    return absl::OkStatus();
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

template <typename F, typename R = std::invoke_result_t<F>>
absl::StatusOr<R> TorchCallOr(absl::string_view context, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

}  // namespace dino
