// dinoctl against a real coordinator with TLS and tokens (over loopback TCP): the token from
// --token, --token-file and $DINO_TOKEN, --tls-ca, and `dinoctl get` showing who submitted a job;
// and, without a server, that a token is never sent in plaintext off loopback without --insecure.
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/dinoctl.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator_server.h"
#include "tests/server/test_certs.h"
#include "tests/server/test_util.h"

namespace dino::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace st = ::dino::server::testing;

constexpr char kSpec[] = R"(name: tiny
data: {kind: DATASET_KIND_SYNTHETIC}
resources: {worldSize: 1}
augmentation: {globalCropSize: 32, localCropSize: 16}
model: {patchSize: 8}
optim: {epochs: 2, warmupEpochs: 0}
)";

class DinoctlAuthTest : public ::testing::Test {
 public:
  struct Result {
    int code;
    std::string out;
    std::string err;
  };

 protected:
  void SetUp() override {
    dir_ = st::NewTempDir("dinoctl_auth");
    std::string log;
    ASSERT_TRUE(st::MakeTestCertificates(dir_, &log)) << log;
    ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), dir_ + "/spec.yaml", kSpec).ok());
    ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), dir_ + "/sam.token", "sam-secret\n").ok());
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_ + "/data";
    options.tick_interval = absl::ZeroDuration();
    options.tls.cert_file = dir_ + "/server.pem";
    options.tls.key_file = dir_ + "/server.key";
    auto tokens =
        server::TokenTable::Parse(absl::StrCat(Sha256::Of("sam-secret"), " sam submitter\n",
                                               Sha256::Of("vera-secret"), " vera viewer\n"),
                                  "tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    options.auth_tokens = std::move(*tokens);
    auto server = server::CoordinatorServer::Start(options, &clock_, DefaultFileSystem(), nullptr);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  Result Run(std::vector<std::string> args, const std::string& token_env = "",
             bool with_ca = true) {
    std::ostringstream out, err;
    DinoctlEnv env;
    env.out = &out;
    env.err = &err;
    env.token_env = token_env;
    env.coordinator_env = absl::StrCat("localhost:", server_->port());
    env.client_defaults.max_attempts = 1;
    env.client_defaults.reconnect_window = absl::Seconds(1);
    if (with_ca) args.insert(args.begin(), {"--tls-ca", dir_ + "/ca.pem"});
    args.insert(args.begin(), {"--timeout", "5s"});
    const int code = RunDinoctl(args, env);
    return {code, out.str(), err.str()};
  }

  std::string dir_;
  SimulatedClock clock_;
  std::unique_ptr<server::CoordinatorServer> server_;
};

TEST_F(DinoctlAuthTest, TokenFromFileFlagOrEnvironment) {
  Result submitted = Run({"--token-file", dir_ + "/sam.token", "submit", dir_ + "/spec.yaml"});
  ASSERT_EQ(submitted.code, 0) << submitted.err;
  EXPECT_THAT(submitted.out, HasSubstr("job-1"));

  Result got = Run({"get", "job-1"}, /*token_env=*/"vera-secret");
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("Submitted by:"));
  EXPECT_THAT(got.out, HasSubstr("sam"));

  // --token wins over $DINO_TOKEN: vera may not submit, whatever the environment says.
  Result as_vera = Run({"--token", "vera-secret", "submit", dir_ + "/spec.yaml"}, "sam-secret");
  EXPECT_EQ(as_vera.code, kExitFailed);
  EXPECT_THAT(as_vera.err, HasSubstr("PERMISSION_DENIED"));
  Result as_sam = Run({"submit", dir_ + "/spec.yaml"}, "sam-secret");
  EXPECT_EQ(as_sam.code, 0) << as_sam.err;
  // A token in argv works, with a warning; from the file or the environment, without one.
  EXPECT_THAT(as_vera.err, HasSubstr("--token is visible to other users"));
  EXPECT_THAT(as_sam.err, Not(HasSubstr("--token is visible")));
  EXPECT_THAT(submitted.err, Not(HasSubstr("--token is visible")));
}

// Runs dinoctl against `coordinator` without a server: what is checked happens before connecting.
DinoctlAuthTest::Result RunOffline(std::vector<std::string> args, const std::string& coordinator,
                                   const std::string& token_env = "") {
  std::ostringstream out, err;
  DinoctlEnv env;
  env.out = &out;
  env.err = &err;
  env.token_env = token_env;
  env.coordinator_env = coordinator;
  env.client_defaults.max_attempts = 1;
  env.client_defaults.reconnect_window = absl::Seconds(1);
  args.insert(args.begin(), {"--timeout", "2s"});
  const int code = RunDinoctl(args, env);
  return {code, out.str(), err.str()};
}

TEST(DinoctlTokenTransportTest, ATokenGoesInPlaintextOnlyToLoopbackOrWithInsecure) {
  const std::string dir = st::NewTempDir("dinoctl_transport");
  ASSERT_TRUE(WriteFileAtomically(DefaultFileSystem(), dir + "/t.token", "secret\n").ok());
  for (const auto& [args, env] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--token-file", dir + "/t.token", "list"}, ""},
           {{"list"}, "secret"},
           {{"--token", "secret", "list"}, ""}}) {
    DinoctlAuthTest::Result refused = RunOffline(args, "10.0.0.5:50051", env);
    EXPECT_EQ(refused.code, kExitUsage) << refused.err;
    EXPECT_THAT(refused.err, HasSubstr("refusing to send a bearer token in plaintext to "
                                       "10.0.0.5:50051"));
    EXPECT_THAT(refused.err, HasSubstr("--insecure"));
  }
  // No token: nothing to protect. The name does not resolve, so the call fails UNAVAILABLE.
  DinoctlAuthTest::Result tokenless = RunOffline({"list"}, "dns:///dinotrain-test.invalid:50051");
  EXPECT_EQ(tokenless.code, kExitUnavailable) << tokenless.err;
  // --insecure sends it anyway.
  DinoctlAuthTest::Result insecure =
      RunOffline({"--insecure", "list"}, "dns:///dinotrain-test.invalid:50051", "secret");
  EXPECT_EQ(insecure.code, kExitUnavailable) << insecure.err;
  EXPECT_THAT(insecure.err, Not(HasSubstr("refusing")));
}

TEST_F(DinoctlAuthTest, NoTokenWrongTokenAndNoCa) {
  Result none = Run({"list"});
  EXPECT_EQ(none.code, kExitFailed);
  EXPECT_THAT(none.err, HasSubstr("UNAUTHENTICATED"));
  Result wrong = Run({"list"}, "guess");
  EXPECT_EQ(wrong.code, kExitFailed);
  EXPECT_THAT(wrong.err, HasSubstr("unknown token"));
  Result plaintext = Run({"list"}, "vera-secret", /*with_ca=*/false);
  EXPECT_EQ(plaintext.code, kExitUnavailable) << plaintext.err;
  Result missing_file = Run({"--token-file", dir_ + "/nope", "list"});
  EXPECT_EQ(missing_file.code, kExitUsage);
  EXPECT_THAT(missing_file.err, HasSubstr("--token-file"));
}

}  // namespace
}  // namespace dino::client
