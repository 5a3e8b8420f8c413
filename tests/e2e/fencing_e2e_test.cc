// End to end, the fault between processes that fencing a checkpoint at its commit guards against:
// a checkpoint upload in flight when its job is cancelled is refused at commit by a real
// dino-coordinator (the test process plays the worker, so the upload is held open across the
// cancel).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_system.h"
#include "common/sha256.h"
#include "dino/v1/worker.grpc.pb.h"
#include "tests/e2e/cluster.h"

namespace dino::e2e {
namespace {

using dino::v1::Job;

TEST(FencingE2E, UploadInFlightWhenItsJobIsCancelledIsRefusedAtCommit) {
  Cluster cluster("cancel-during-upload");
  cluster.StartCoordinator();
  auto channel = grpc::CreateChannel(cluster.coordinator_address(),
                                     grpc::InsecureChannelCredentials());
  auto workers = dino::v1::WorkerService::NewStub(channel);

  // The test is the worker: registered, connected, and assigned the job.
  std::string worker_id;
  for (int i = 0; i < 100 && worker_id.empty(); ++i) {  // The coordinator may still be starting.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    dino::v1::RegisterRequest request;
    request.set_name("test-worker");
    request.set_device("cpu");
    request.set_threads(1);
    request.set_rendezvous_address("127.0.0.1:1");
    dino::v1::RegisterResponse response;
    if (workers->Register(&context, request, &response).ok()) {
      worker_id = response.worker_id();
    } else {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  ASSERT_FALSE(worker_id.empty()) << cluster.Logs();
  grpc::ClientContext stream_context;
  auto stream = workers->Connect(&stream_context);
  dino::v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id);
  ASSERT_TRUE(stream->Write(hello));
  ASSERT_OK_AND_ASSIGN(job, cluster.Submit(TinySpec(1, 5)));
  dino::v1::CoordinatorMessage message;
  ASSERT_TRUE(stream->Read(&message)) << cluster.Logs();
  ASSERT_TRUE(message.has_assignment()) << message.DebugString();
  ASSERT_EQ(message.assignment().job_id(), job.id());

  // Half of a checkpoint's bytes go out; its temporary file shows the coordinator began it.
  const std::string bytes(2 << 20, 'w');
  grpc::ClientContext upload_context;
  dino::v1::UploadCheckpointResponse upload_response;
  auto upload = workers->UploadCheckpoint(&upload_context, &upload_response);
  dino::v1::UploadCheckpointRequest part;
  auto* header = part.mutable_header();
  header->set_worker_id(worker_id);
  header->set_job_id(job.id());
  header->set_attempt(message.assignment().attempt());
  header->set_step(10);
  header->set_size_bytes(static_cast<int64_t>(bytes.size()));
  ASSERT_TRUE(upload->Write(part));
  part.set_data(bytes.substr(0, bytes.size() / 2));
  ASSERT_TRUE(upload->Write(part));
  const std::string job_dir = absl::StrCat(cluster.coordinator_data_dir(), "/checkpoints/", job.id());
  bool begun = false;
  for (int i = 0; i < 200 && !begun; ++i) {
    auto files = DefaultFileSystem()->ListDir(job_dir);
    begun = files.ok() && !files->empty();
    if (!begun) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(begun) << "no upload file under " << job_dir << "\n" << cluster.Logs();

  {
    grpc::ClientContext context;
    dino::v1::CancelJobRequest request;
    request.set_job_id(job.id());
    Job cancelled;
    ASSERT_TRUE(cluster.jobs()->CancelJob(&context, request, &cancelled).ok());
    EXPECT_EQ(cancelled.state(), dino::v1::JOB_STATE_CANCELLED);
  }
  part.set_data(bytes.substr(bytes.size() / 2));
  ASSERT_TRUE(upload->Write(part));
  part.set_sha256(Sha256::Of(bytes));
  ASSERT_TRUE(upload->Write(part));
  ASSERT_TRUE(upload->WritesDone());
  grpc::Status status = upload->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message() << "\n" << cluster.Logs();

  ASSERT_OK_AND_ASSIGN(listed, cluster.Checkpoints(job.id()));
  EXPECT_TRUE(listed.empty());
  ASSERT_OK_AND_ASSIGN(got, cluster.GetJob(job.id()));
  EXPECT_EQ(got.state(), dino::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(got.latest_checkpoint_id().empty());
  auto files = DefaultFileSystem()->ListDir(job_dir);
  EXPECT_TRUE(!files.ok() || files->empty()) << "left behind: " << (*files)[0];
  stream_context.TryCancel();
}

}  // namespace
}  // namespace dino::e2e
