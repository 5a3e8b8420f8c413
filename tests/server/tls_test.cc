// Transport security: certificates made by /usr/bin/openssl in a temporary directory (a CA, a
// server certificate for localhost/127.0.0.1, a client certificate). A client without the CA
// fails and one with it works; mTLS refuses a client without a certificate; plaintext is refused
// on a non-loopback address unless --insecure; dino-coordinator says so and exits non-zero.
#include <grpcpp/grpcpp.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_credentials.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator_server.h"
#include "tests/server/test_certs.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::NewTempDir("tls"));
    std::string log;
    ASSERT_TRUE(testing::MakeTestCertificates(*dir_, &log)) << log;
  }

  static std::string File(const std::string& name) { return absl::StrCat(*dir_, "/", name); }

  void Start(const ServerTlsOptions& tls) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = testing::NewTempDir("tls_data");
    options.tick_interval = absl::ZeroDuration();
    options.tls = tls;
    auto server = CoordinatorServer::Start(options, &clock_, DefaultFileSystem(), nullptr);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // ListJobs over a fresh channel with `credentials`.
  grpc::Status Call(const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                    const std::string& host = "localhost") {
    auto channel = grpc::CreateChannel(absl::StrCat(host, ":", server_->port()), credentials);
    auto stub = dino::v1::JobService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    dino::v1::ListJobsResponse response;
    return stub->ListJobs(&context, dino::v1::ListJobsRequest(), &response);
  }

  std::shared_ptr<grpc::ChannelCredentials> Client(const ChannelTlsOptions& tls) {
    auto credentials = MakeChannelCredentials(tls);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    return credentials.ok() ? *credentials : grpc::InsecureChannelCredentials();
  }

  static std::string* dir_;
  SimulatedClock clock_;
  std::unique_ptr<CoordinatorServer> server_;
};

std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, OnlyAClientThatTrustsTheCaConnects) {
  Start({File("server.pem"), File("server.key"), "", false});
  EXPECT_FALSE(Call(grpc::InsecureChannelCredentials()).ok()) << "plaintext client";
  EXPECT_FALSE(Call(Client({File("other.pem"), "", ""})).ok()) << "client trusting another CA";
  grpc::Status with_ca = Call(Client({File("ca.pem"), "", ""}));
  EXPECT_TRUE(with_ca.ok()) << with_ca.error_message();
  grpc::Status by_ip = Call(Client({File("ca.pem"), "", ""}), "127.0.0.1");
  EXPECT_TRUE(by_ip.ok()) << by_ip.error_message();
}

TEST_F(TlsTest, MutualTlsRefusesAClientWithoutACertificate) {
  Start({File("server.pem"), File("server.key"), File("ca.pem"), false});
  EXPECT_FALSE(Call(Client({File("ca.pem"), "", ""})).ok()) << "no client certificate";
  EXPECT_FALSE(Call(grpc::InsecureChannelCredentials()).ok()) << "plaintext client";
  grpc::Status with_cert = Call(Client({File("ca.pem"), File("client.pem"), File("client.key")}));
  EXPECT_TRUE(with_cert.ok()) << with_cert.error_message();
}

TEST(CredentialsTest, PlaintextOnlyOnLoopbackUnlessInsecure) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:50051"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:50051"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/tmp/dino.sock"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackAddress(":50051"));
  EXPECT_FALSE(IsLoopbackAddress("10.1.2.3:50051"));
  EXPECT_FALSE(IsLoopbackAddress("coordinator.example:50051"));
  EXPECT_FALSE(IsLoopbackAddress("localhost.example:50051"));

  auto refused = MakeServerCredentials({}, "0.0.0.0:50051");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("--insecure"));
  EXPECT_TRUE(MakeServerCredentials({}, "127.0.0.1:50051").ok());
  ServerTlsOptions insecure;
  insecure.insecure = true;
  EXPECT_TRUE(MakeServerCredentials(insecure, "0.0.0.0:50051").ok());

  EXPECT_EQ(MakeServerCredentials({"cert.pem", "", "", false}, "0.0.0.0:1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeServerCredentials({"", "", "ca.pem", false}, "127.0.0.1:1").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto missing =
      MakeServerCredentials({"/nonexistent/c.pem", "/nonexistent/k.pem", "", false}, "0.0.0.0:1");
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("--tls-cert"));
  EXPECT_EQ(MakeChannelCredentials({"/nonexistent/ca.pem", "", ""}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MakeChannelCredentials({"", "c.pem", "k.pem"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// What an operator sees: dino-coordinator on 0.0.0.0 without TLS stops with one clear line.
TEST(CoordinatorFlagsTest, NonLoopbackPlaintextNeedsInsecure) {
  const std::string dir = testing::NewTempDir("tls_main");
  std::string output;
  const bool ok =
      testing::Shell(absl::StrCat("server/dino-coordinator --listen 0.0.0.0:0 --data-dir ", dir,
                                  " --metrics-port 0"),
                     &output);
  EXPECT_FALSE(ok);
  EXPECT_THAT(output, HasSubstr("refusing plaintext gRPC on non-loopback address 0.0.0.0:0"));
  EXPECT_THAT(output, HasSubstr("--tls-cert and --tls-key, or --insecure"));

  output.clear();
  const std::string tokens = absl::StrCat(dir, "/tokens");
  ASSERT_TRUE(testing::Shell(absl::StrCat("printf 'abc alice viewer\\n' > ", tokens), &output));
  EXPECT_FALSE(testing::Shell(absl::StrCat("server/dino-coordinator --data-dir ", dir,
                                           " --metrics-port 0 --auth-tokens ", tokens),
                              &output));
  EXPECT_THAT(output, HasSubstr(absl::StrCat(tokens, ":1: the first field must be")));
}

}  // namespace
}  // namespace dino::server
