#include "common/token_transport.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dino {
namespace {

using ::testing::HasSubstr;

TEST(TokenTransportTest, LoopbackTargets) {
  for (const char* target :
       {"localhost:50051", "LOCALHOST:1", "127.0.0.1:50051", "127.9.8.7:1", "[::1]:50051", "::1",
        "unix:/run/dino.sock", "unix-abstract:dino", "dns:///localhost:50051",
        "dns://8.8.8.8/127.0.0.1:50051", "dns:localhost:50051", "ipv4:127.0.0.1:50051",
        "ipv6:[::1]:50051", "ipv4:127.0.0.1:1,127.0.0.2:2"}) {
    EXPECT_TRUE(IsLoopbackTarget(target)) << target;
  }
  for (const char* target :
       {"10.0.0.5:50051", "0.0.0.0:50051", "[::]:50051", "coordinator:50051",
        "dns:///coordinator:50051", "dns://127.0.0.1/coordinator:50051", "ipv4:10.0.0.1:50051",
        "ipv4:10.0.0.1:1,127.0.0.1:2", "ipv4:127.0.0.1:1,10.0.0.1:2", "ipv4:127.0.0.1:1,",
        "128.0.0.1:50051", "localhost.example.com:50051", "",
        "dns:", "dns://127.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackTarget(target)) << target;
  }
}

TEST(TokenTransportTest, ATokenNeedsTlsLoopbackOrInsecure) {
  EXPECT_TRUE(CheckTokenTransport("10.0.0.5:50051", /*has_token=*/false, false, false).ok());
  EXPECT_TRUE(CheckTokenTransport("localhost:50051", true, false, false).ok());
  EXPECT_TRUE(CheckTokenTransport("10.0.0.5:50051", true, /*tls=*/true, false).ok());
  EXPECT_TRUE(CheckTokenTransport("10.0.0.5:50051", true, false, /*insecure=*/true).ok());
  absl::Status refused = CheckTokenTransport("10.0.0.5:50051", true, false, false);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("10.0.0.5:50051"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--tls-ca"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--insecure"));
}

}  // namespace
}  // namespace dino
