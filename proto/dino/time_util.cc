#include "proto/dino/time_util.h"

#include <cstdint>

namespace dino {
namespace {

// The range of google.protobuf.Timestamp (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z)
// and of google.protobuf.Duration (about 10,000 years either way), as documented in their protos.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;
constexpr int64_t kMaxDurationSeconds = 315576000000;
constexpr int32_t kMaxNanos = 999999999;

}  // namespace

google::protobuf::Timestamp ToTimestampProto(absl::Time time) {
  google::protobuf::Timestamp out;
  if (time < absl::FromUnixSeconds(kMinTimestampSeconds)) {
    out.set_seconds(kMinTimestampSeconds);
    return out;
  }
  if (time > absl::FromUnixSeconds(kMaxTimestampSeconds) + absl::Nanoseconds(kMaxNanos)) {
    out.set_seconds(kMaxTimestampSeconds);
    out.set_nanos(kMaxNanos);
    return out;
  }
  const int64_t seconds = absl::ToUnixSeconds(time);  // Rounds down, so the rest is >= 0.
  out.set_seconds(seconds);
  out.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  return out;
}

absl::Time FromTimestampProto(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

google::protobuf::Timestamp ToMicrosTimestampProto(absl::Time time) {
  if (time == absl::InfiniteFuture() || time == absl::InfinitePast()) return ToTimestampProto(time);
  return ToTimestampProto(absl::FromUnixMicros(absl::ToUnixMicros(time)));
}

google::protobuf::Duration ToDurationProto(absl::Duration duration) {
  google::protobuf::Duration out;
  const absl::Duration max = absl::Seconds(kMaxDurationSeconds) + absl::Nanoseconds(kMaxNanos);
  if (duration > max || duration < -max) {
    const int sign = duration > absl::ZeroDuration() ? 1 : -1;
    out.set_seconds(sign * kMaxDurationSeconds);
    out.set_nanos(sign * kMaxNanos);
    return out;
  }
  // Truncates towards zero: seconds and nanos then have the same sign, as Duration requires.
  absl::Duration rest;
  const int64_t seconds = absl::IDivDuration(duration, absl::Seconds(1), &rest);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rest)));
  return out;
}

absl::Duration FromDurationProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

}  // namespace dino
