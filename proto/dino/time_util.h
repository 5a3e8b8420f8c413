// Conversion between protobuf's well-known time types and Abseil's: google.protobuf.Timestamp <->
// absl::Time and google.protobuf.Duration <-> absl::Duration. The one place where the two meet;
// the API's messages carry protobuf times, the code computes with Abseil's.
//
// Written by hand because protobuf's TimeUtil speaks time_t, timeval and int64 counts, not
// Abseil. Lives beside the generated code (dino_proto_time) because dino_common does not link
// protobuf.
//
// Precision: nanoseconds, rounded down (towards the past for times, towards zero for durations).
// Range: a time outside the range a Timestamp can hold (0001-01-01 to 9999-12-31, UTC), the
// infinite ones included, is clamped to its ends; a duration beyond +-315,576,000,000 s (the
// range of Duration) likewise. Timestamps and Durations read from the wire are converted as they
// are, without validation: an unset Timestamp is the Unix epoch.
//
// Thread-safety: stateless. Failure: never fails.
#pragma once

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace dino {

google::protobuf::Timestamp ToTimestampProto(absl::Time time);
absl::Time FromTimestampProto(const google::protobuf::Timestamp& timestamp);
// ToTimestampProto of `time` rounded down to a whole microsecond. The coordinator stamps its
// records this way: its store indexes jobs by submit time in microseconds, and the JSON of its
// times shows six fractional digits.
google::protobuf::Timestamp ToMicrosTimestampProto(absl::Time time);

google::protobuf::Duration ToDurationProto(absl::Duration duration);
absl::Duration FromDurationProto(const google::protobuf::Duration& duration);

}  // namespace dino
