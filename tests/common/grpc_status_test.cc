#include "common/grpc_status.h"

#include <gtest/gtest.h>

namespace dino {
namespace {

TEST(GrpcStatusTest, EveryCodeRoundTripsWithItsMessage) {
  for (int code = 1; code <= 16; ++code) {
    absl::Status s(static_cast<absl::StatusCode>(code), "msg " + std::to_string(code));
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(g.error_message(), "msg " + std::to_string(code));
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
}

TEST(GrpcStatusTest, NamedCodesKeepTheirMeaning) {
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::AbortedError("x")).error_code(), grpc::StatusCode::ABORTED);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, OutOfRangeCodeBecomesUnknown) {
  absl::Status weird(static_cast<absl::StatusCode>(42), "odd");
  EXPECT_EQ(ToGrpcStatus(weird).error_code(), grpc::StatusCode::UNKNOWN);
}

TEST(GrpcStatusTest, LongMessagesAreCutAtACharacterBoundaryAndSaySo) {
  const std::string exact(kMaxGrpcStatusMessageBytes, 'a');
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError(exact)).error_message(), exact);

  // A NOT_FOUND quoting a 64 KiB id comes back at about 1 KiB, naming the bytes left out.
  const std::string id(1 << 16, '/');
  grpc::Status g = ToGrpcStatus(absl::NotFoundError("job " + id + " not found"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(g.error_message().size(), kMaxGrpcStatusMessageBytes + 32);
  EXPECT_EQ(g.error_message().substr(0, 8), "job ////");
  EXPECT_NE(g.error_message().find("... [64526 more bytes]"), std::string::npos)
      << g.error_message().substr(kMaxGrpcStatusMessageBytes - 8);

  // "é" is two bytes; one straddling the limit is not split.
  const std::string accents = std::string(kMaxGrpcStatusMessageBytes - 1, 'a') + "\xc3\xa9tail";
  const std::string cut = ToGrpcStatus(absl::InternalError(accents)).error_message();
  EXPECT_EQ(cut.substr(0, kMaxGrpcStatusMessageBytes),
            std::string(kMaxGrpcStatusMessageBytes - 1, 'a') + ".");
  EXPECT_NE(cut.find("[6 more bytes]"), std::string::npos) << cut;
}

}  // namespace
}  // namespace dino
