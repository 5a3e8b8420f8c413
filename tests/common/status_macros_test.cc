#include "common/status_macros.h"

#include <gtest/gtest.h>

namespace dino {
namespace {

absl::StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return absl::InvalidArgumentError("must be > 0");
  return v;
}

absl::StatusOr<int> Doubled(int v) {
  DINO_ASSIGN_OR_RETURN(int x, ParsePositive(v));
  return 2 * x;
}

absl::Status CheckBoth(int a, int b) {
  DINO_RETURN_IF_ERROR(ParsePositive(a).status());
  DINO_RETURN_IF_ERROR(Annotate(ParsePositive(b).status(), "second"));
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesValueAndError) {
  EXPECT_EQ(*Doubled(4), 8);
  absl::StatusOr<int> bad = Doubled(-1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "must be > 0");
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtFirstError) {
  EXPECT_TRUE(CheckBoth(1, 1).ok());
  EXPECT_EQ(CheckBoth(0, 1).message(), "must be > 0");
  EXPECT_EQ(CheckBoth(1, 0).message(), "second: must be > 0");
}

TEST(StatusMacrosTest, AnnotateKeepsCodeAndOkStaysOk) {
  EXPECT_TRUE(Annotate(absl::OkStatus(), "ctx").ok());
  absl::Status s = Annotate(absl::NotFoundError("no such job"), "GetJob j-1");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "GetJob j-1: no such job");
}

}  // namespace
}  // namespace dino
