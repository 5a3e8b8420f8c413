#include "proto/dino/time_util.h"

#include "gtest/gtest.h"

namespace dino {
namespace {

TEST(TimeUtilTest, TimestampRoundTripsToTheNanosecond) {
  const absl::Time t = absl::FromUnixSeconds(1'700'000'000) + absl::Nanoseconds(123'456'789);
  const google::protobuf::Timestamp proto = ToTimestampProto(t);
  EXPECT_EQ(proto.seconds(), 1'700'000'000);
  EXPECT_EQ(proto.nanos(), 123'456'789);
  EXPECT_EQ(FromTimestampProto(proto), t);
}

TEST(TimeUtilTest, TimestampBeforeTheEpochKeepsNanosNonNegative) {
  const absl::Time t = absl::FromUnixSeconds(-2) + absl::Milliseconds(250);  // -1.75 s
  const google::protobuf::Timestamp proto = ToTimestampProto(t);
  EXPECT_EQ(proto.seconds(), -2);
  EXPECT_EQ(proto.nanos(), 250'000'000);
  EXPECT_EQ(FromTimestampProto(proto), t);
}

TEST(TimeUtilTest, TimestampRoundsDownBelowANanosecond) {
  const absl::Time t = absl::FromUnixSeconds(10) + absl::Nanoseconds(7) + absl::Nanoseconds(1) / 4;
  EXPECT_EQ(ToTimestampProto(t).nanos(), 7);
}

TEST(TimeUtilTest, MicrosTimestampRoundsDownToAMicrosecond) {
  const absl::Time t = absl::FromUnixSeconds(1'700'000'000) + absl::Nanoseconds(123'456'789);
  const google::protobuf::Timestamp proto = ToMicrosTimestampProto(t);
  EXPECT_EQ(proto.seconds(), 1'700'000'000);
  EXPECT_EQ(proto.nanos(), 123'456'000);
  const absl::Time before_epoch = absl::FromUnixSeconds(-1) + absl::Nanoseconds(999);
  EXPECT_EQ(ToMicrosTimestampProto(before_epoch).seconds(), -1);
  EXPECT_EQ(ToMicrosTimestampProto(before_epoch).nanos(), 0);
}

TEST(TimeUtilTest, UnsetTimestampIsTheEpoch) {
  EXPECT_EQ(FromTimestampProto(google::protobuf::Timestamp()), absl::UnixEpoch());
  const google::protobuf::Timestamp epoch = ToTimestampProto(absl::UnixEpoch());
  EXPECT_EQ(epoch.seconds(), 0);
  EXPECT_EQ(epoch.nanos(), 0);
}

TEST(TimeUtilTest, InfiniteTimesClampToTheTimestampRange) {
  const google::protobuf::Timestamp future = ToTimestampProto(absl::InfiniteFuture());
  EXPECT_EQ(future.seconds(), 253402300799);
  EXPECT_EQ(future.nanos(), 999999999);
  const google::protobuf::Timestamp past = ToTimestampProto(absl::InfinitePast());
  EXPECT_EQ(past.seconds(), -62135596800);
  EXPECT_EQ(past.nanos(), 0);
}

TEST(TimeUtilTest, DurationRoundTripsWithTheSameSignOnBothFields) {
  const absl::Duration positive = absl::Seconds(3) + absl::Milliseconds(500);
  google::protobuf::Duration proto = ToDurationProto(positive);
  EXPECT_EQ(proto.seconds(), 3);
  EXPECT_EQ(proto.nanos(), 500'000'000);
  EXPECT_EQ(FromDurationProto(proto), positive);

  const absl::Duration negative = -positive;
  proto = ToDurationProto(negative);
  EXPECT_EQ(proto.seconds(), -3);
  EXPECT_EQ(proto.nanos(), -500'000'000);
  EXPECT_EQ(FromDurationProto(proto), negative);

  proto = ToDurationProto(absl::ZeroDuration());
  EXPECT_EQ(proto.seconds(), 0);
  EXPECT_EQ(proto.nanos(), 0);
}

TEST(TimeUtilTest, WholeSecondDurationsHaveNoNanos) {
  const google::protobuf::Duration proto = ToDurationProto(absl::Seconds(15));
  EXPECT_EQ(proto.seconds(), 15);
  EXPECT_EQ(proto.nanos(), 0);
}

TEST(TimeUtilTest, InfiniteDurationsClampToTheDurationRange) {
  const google::protobuf::Duration up = ToDurationProto(absl::InfiniteDuration());
  EXPECT_EQ(up.seconds(), 315576000000);
  EXPECT_EQ(up.nanos(), 999999999);
  const google::protobuf::Duration down = ToDurationProto(-absl::InfiniteDuration());
  EXPECT_EQ(down.seconds(), -315576000000);
  EXPECT_EQ(down.nanos(), -999999999);
}

}  // namespace
}  // namespace dino
