#include "worker/dino/torch_status.h"

#include <c10/util/Exception.h>

#include <new>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dino {
namespace {

std::string FirstLine(absl::string_view what) {
  const size_t nl = what.find('\n');
  return std::string(nl == absl::string_view::npos ? what : what.substr(0, nl));
}

absl::StatusCode ClassifyMessage(absl::string_view msg) {
  if (absl::StrContains(msg, "out of memory") || absl::StrContains(msg, "Out of memory") ||
      absl::StrContains(msg, "DefaultCPUAllocator: can't allocate")) {
    return absl::StatusCode::kResourceExhausted;
  }
  // Gloo / TCPStore / NCCL failures of a peer or of the connection.
  if (absl::StrContains(msg, "Timed out") || absl::StrContains(msg, "timed out") ||
      absl::StrContains(msg, "Connection closed") || absl::StrContains(msg, "Connection reset") ||
      absl::StrContains(msg, "Broken pipe") || absl::StrContains(msg, "Socket Timeout") ||
      absl::StrContains(msg, "NCCL") || absl::StrContains(msg, "gloo")) {
    return absl::StatusCode::kAborted;
  }
  return absl::StatusCode::kInternal;
}

}  // namespace

absl::Status StatusFromCurrentException(absl::string_view context) {
  try {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": ", FirstLine(e.what_without_backtrace())));
  } catch (const c10::IndexError& e) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", FirstLine(e.what_without_backtrace())));
  } catch (const c10::ValueError& e) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", FirstLine(e.what_without_backtrace())));
  } catch (const c10::TypeError& e) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", FirstLine(e.what_without_backtrace())));
  } catch (const c10::Error& e) {
    const std::string msg = FirstLine(e.what_without_backtrace());
    return absl::Status(ClassifyMessage(msg), absl::StrCat(context, ": ", msg));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": out of memory (std::bad_alloc)"));
  } catch (const std::exception& e) {
    const std::string msg = FirstLine(e.what());
    return absl::Status(ClassifyMessage(msg), absl::StrCat(context, ": ", msg));
  } catch (...) {
    return absl::InternalError(absl::StrCat(context, ": unknown exception"));
  }
}

}  // namespace dino
