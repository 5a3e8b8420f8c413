// End to end with transport security and tokens: a dino-coordinator serving TLS (a
// certificate made by openssl in the test) with --auth-tokens; a dino-worker with --tls-ca and the
// right --token-file registers and runs a tiny job submitted over TLS with a submitter's token;
// workers with a wrong token or none log UNAUTHENTICATED and keep retrying (they do not exit, and
// never register); an unreadable --token-file is a clear startup error (exit 2).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_credentials.h"
#include "common/sha256.h"
#include "tests/e2e/cluster.h"
#include "tests/server/test_certs.h"

namespace dino::e2e {
namespace {

using ::testing::HasSubstr;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

TEST(SecureClusterE2E, TlsAndTokensForWorkersAndClients) {
  Cluster cluster("secure");
  const std::string certs = cluster.dir() + "/certs";
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p ", certs).c_str()), 0);
  std::string openssl_log;
  ASSERT_TRUE(server::testing::MakeTestCertificates(certs, &openssl_log)) << openssl_log;

  const std::string worker_token = "worker-token-0123456789";
  const std::string submitter_token = "submitter-token-abcdef";
  WriteFile(cluster.dir() + "/tokens",
            absl::StrCat("# sha256 name role\n", Sha256::Of(worker_token), " pool worker\n",
                         Sha256::Of(submitter_token), " alice submitter\n"));
  WriteFile(cluster.dir() + "/worker.token", worker_token + "\n");
  WriteFile(cluster.dir() + "/wrong.token", "not-a-known-token\n");

  cluster.coordinator_flags = {"--tls-cert",    certs + "/server.pem",
                               "--tls-key",     certs + "/server.key",
                               "--auth-tokens", cluster.dir() + "/tokens"};
  cluster.StartCoordinator();
  const std::vector<std::string> tls = {"--tls-ca", certs + "/ca.pem"};

  // Worker 0: the right token and the CA. Worker 1: a wrong token. Worker 2: no token at all.
  cluster.worker_flags = tls;
  cluster.worker_flags.insert(cluster.worker_flags.end(),
                              {"--token-file", cluster.dir() + "/worker.token"});
  cluster.StartWorker(0);
  cluster.worker_flags = tls;
  cluster.worker_flags.insert(cluster.worker_flags.end(),
                              {"--token-file", cluster.dir() + "/wrong.token"});
  cluster.StartWorker(1);
  cluster.worker_flags = tls;
  cluster.StartWorker(2);

  // Worker 3: an unreadable token file stops it at start-up, naming the flag.
  cluster.worker_flags = tls;
  cluster.worker_flags.insert(cluster.worker_flags.end(),
                              {"--token-file", cluster.dir() + "/no-such.token"});
  cluster.StartWorker(3);

  // The client: TLS verified against the CA, and a submitter's token.
  ChannelTlsOptions client_tls;
  client_tls.ca_file = certs + "/ca.pem";
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel =
      MakeChannelCredentials(client_tls);
  ASSERT_TRUE(channel.ok()) << channel.status();
  cluster.UseClientCredentials(
      grpc::CompositeChannelCredentials(*channel, grpc::AccessTokenCredentials(submitter_token)));

  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(TinySpec(1, 1)));
  EXPECT_EQ(job.submitter(), "alice");
  ASSERT_OK_AND_ASSIGN(done, cluster.WaitTerminal(job.id(), absl::Seconds(120)));
  ASSERT_EQ(done.state(), dino::v1::JOB_STATE_SUCCEEDED) << done.DebugString() << cluster.Logs();

  // Only worker 0 ever registered; 1 and 2 are still running, refused, and still trying.
  ASSERT_OK_AND_ASSIGN(workers, cluster.Workers());
  ASSERT_EQ(workers.size(), 1u) << cluster.Logs();
  EXPECT_EQ(workers[0].name(), "worker-0");
  for (int i : {1, 2}) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    std::string log = cluster.WorkerLog(i);
    while (Count(log, "UNAUTHENTICATED") < 2 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(200));
      log = cluster.WorkerLog(i);
    }
    EXPECT_TRUE(cluster.WorkerRunning(i)) << "worker " << i << " exited\n" << log;
    EXPECT_GE(Count(log, "UNAUTHENTICATED"), 2) << "worker " << i << " log:\n" << log;
    EXPECT_THAT(log, HasSubstr("registering with 127.0.0.1:")) << log;
  }

  ASSERT_OK_AND_ASSIGN(exit_code, cluster.WaitWorker(3, absl::Seconds(20)));
  EXPECT_EQ(exit_code, 2);
  EXPECT_THAT(cluster.WorkerLog(3), HasSubstr("dino-worker: --token-file: cannot read "));
}

}  // namespace
}  // namespace dino::e2e
