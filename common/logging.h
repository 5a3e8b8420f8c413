// Minimal leveled logging to stderr: `DINO_LOG(INFO) << "worker " << id << " registered";`
//
// Abseil 20220623 predates absl/log and glog would be one more dependency for four lines of
// output, so this is the whole logger: one line per message, UTC timestamp, level, file:line.
// Lines are written with a single write() so concurrent threads do not interleave within a line.
//
// Thread-safety: safe from any thread. Failure: a failed write to stderr is ignored.
#pragma once

#include <sstream>

namespace dino {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo. Set once in main().
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Turns the streamed expression into void; & binds looser than << and tighter than ?:.
struct LogMessageVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace dino

#define DINO_LOG_LEVEL_DEBUG ::dino::LogLevel::kDebug
#define DINO_LOG_LEVEL_INFO ::dino::LogLevel::kInfo
#define DINO_LOG_LEVEL_WARNING ::dino::LogLevel::kWarning
#define DINO_LOG_LEVEL_ERROR ::dino::LogLevel::kError

// An expression (not an if/else), so `if (x) DINO_LOG(INFO) << ...;` has no dangling else.
#define DINO_LOG(level)                                                 \
  (DINO_LOG_LEVEL_##level < ::dino::MinLogLevel())                      \
      ? (void)0                                                         \
      : ::dino::LogMessageVoidify() &                                   \
            ::dino::LogMessage(DINO_LOG_LEVEL_##level, __FILE__, __LINE__).stream()
