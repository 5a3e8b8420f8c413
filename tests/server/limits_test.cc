// Request limits and confinement on the coordinator (server/limits.h): the checks alone, then
// through an in-process gRPC server started with small limits, including checkpoint ids and job
// ids that try to name files ("../x").
#include "server/limits.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "common/sha256.h"
#include "common/watch_resume.h"
#include "dino/v1/coordinator.grpc.pb.h"
#include "dino/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/checkpoint_registry.h"
#include "spec/job_spec.h"
#include "tests/server/grpc_service_fixture.h"
#include "tests/server/test_util.h"

namespace dino::server {
namespace {

using ::testing::HasSubstr;

TEST(LimitsTest, SpecSizeAndDataRoots) {
  const std::string root = testing::NewTempDir("roots");
  ServerLimits limits;
  limits.max_spec_bytes = 2048;
  dino::v1::JobSpec spec = testing::TinySpec();
  EXPECT_TRUE(CheckSubmittedSpec(spec, limits).ok());
  spec.set_name(std::string(4096, 'n'));
  absl::Status big = CheckSubmittedSpec(spec, limits);
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.message(), HasSubstr("--max-spec-bytes=2048"));

  limits.data_roots = *PathConfinement::Create({root});
  spec = testing::TinySpec();
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
  spec.mutable_data()->set_path(root + "/train-images.gz");
  spec.mutable_data()->set_labels_path(root + "/train-labels.gz");
  EXPECT_TRUE(CheckSubmittedSpec(spec, limits).ok());
  spec.mutable_data()->set_eval_path(root + "/../eval-images.gz");
  EXPECT_THAT(CheckSubmittedSpec(spec, limits).message(), HasSubstr("data.eval_path"));
  spec.mutable_data()->set_eval_path(root + "/eval");
  spec.mutable_data()->set_eval_labels_path("/etc/shadow");
  absl::Status outside = CheckSubmittedSpec(spec, limits);
  EXPECT_EQ(outside.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outside.message(), HasSubstr("data.eval_labels_path \"/etc/shadow\""));
  EXPECT_THAT(outside.message(), HasSubstr(limits.data_roots.RootsText()));
}

// Fields in range whose product is not: a huge batch of big crops, a huge model.
TEST(LimitsTest, SpecFieldsThatMultiplyIntoTerabytesAreRefused) {
  dino::v1::JobSpec spec = testing::TinySpec();
  spec.mutable_optim()->set_batch_size_per_rank(65536);
  spec.mutable_augmentation()->set_global_crop_size(4096);
  spec.mutable_augmentation()->set_local_crop_size(96);
  spec.mutable_model()->set_patch_size(16);
  spec::ApplyJobSpecDefaults(&spec);
  absl::Status batch = spec::ValidateJobSpec(spec);
  EXPECT_EQ(batch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(batch.message(), HasSubstr("input values per rank, more than the limit 4294967296"));

  spec = testing::TinySpec();
  spec.mutable_model()->set_preset("custom");
  spec.mutable_model()->set_dim(8192);
  spec.mutable_model()->set_heads(64);
  spec.mutable_model()->set_depth(128);
  spec::ApplyJobSpecDefaults(&spec);
  EXPECT_THAT(spec::ValidateJobSpec(spec).message(), HasSubstr("parameters, more than the limit"));

  spec = testing::TinySpec();
  spec.mutable_data()->set_max_corrupt(int64_t{1} << 40);
  spec::ApplyJobSpecDefaults(&spec);
  EXPECT_THAT(spec::ValidateJobSpec(spec).message(), HasSubstr("data.max_corrupt must be in"));

  spec = testing::TinySpec();  // DINO's own ImageNet setting stays valid.
  spec.mutable_augmentation()->clear_global_crop_size();
  spec.mutable_augmentation()->clear_local_crop_size();
  spec.mutable_model()->clear_patch_size();
  spec.mutable_model()->set_preset("vit_base");
  spec::ApplyJobSpecDefaults(&spec);
  absl::Status dino = spec::ValidateJobSpec(spec);
  EXPECT_TRUE(dino.ok()) << dino;
}

TEST(LimitsTest, UploadSizes) {
  ServerLimits limits;
  limits.max_upload_chunk_bytes = 100;
  limits.max_checkpoint_bytes = 1000;
  EXPECT_TRUE(CheckUploadChunk(100, limits).ok());
  EXPECT_EQ(CheckUploadChunk(101, limits).code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(CheckUploadChunk(101, limits).message(), HasSubstr("--max-upload-chunk-bytes=100"));
  EXPECT_TRUE(CheckCheckpointSize(1000, limits).ok());
  EXPECT_EQ(CheckCheckpointSize(1001, limits).code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(CheckCheckpointSize(1001, limits).message(),
              HasSubstr("--max-checkpoint-bytes=1000"));
}

TEST(LimitsTest, ClientKeyIsTheNameElseThePeerHost) {
  EXPECT_EQ(ClientKey("ipv4:127.0.0.1:41234", ""), "ipv4:127.0.0.1");
  EXPECT_EQ(ClientKey("ipv6:[::1]:41234", ""), "ipv6:[::1]");
  EXPECT_EQ(ClientKey("ipv6:%5B::1%5D:41234", ""), "ipv6:%5B::1%5D");
  EXPECT_EQ(ClientKey("unix:/tmp/socket", ""), "unix:/tmp/socket");
  EXPECT_EQ(ClientKey("ipv4:127.0.0.1:41234", "alice"), "name:alice");
}

TEST(LimitsTest, WatchStreamLimiterCountsPerClient) {
  WatchStreamLimiter limiter(2);
  EXPECT_TRUE(limiter.Acquire("a").ok());
  EXPECT_TRUE(limiter.Acquire("a").ok());
  absl::Status third = limiter.Acquire("a");
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.message(), HasSubstr("--max-watch-streams=2"));
  EXPECT_TRUE(limiter.Acquire("b").ok());
  limiter.Release("a");
  EXPECT_EQ(limiter.open("a"), 1);
  EXPECT_TRUE(limiter.Acquire("a").ok());
}

// A checkpoint's files are named by the registry, never by the uploader: a job id that is not a
// plain name is refused before anything touches the disk.
TEST(LimitsTest, CheckpointRegistryRefusesJobIdsThatAreNotPlainNames) {
  const std::string dir = testing::NewTempDir("registry");
  auto store = OpenSqliteStore(dir + "/coordinator.db");
  ASSERT_TRUE(store.ok()) << store.status();
  CheckpointRegistry registry(store->get(), DefaultFileSystem(), dir + "/checkpoints");
  ASSERT_TRUE(registry.Recover().ok());
  for (const char* job : {"../x", "..", ".", "a/b", "", "/etc", "job-1\n"}) {
    dino::v1::CheckpointInfo info;
    info.set_job_id(job);
    info.set_size_bytes(1);
    auto upload = registry.BeginUpload(info);
    ASSERT_FALSE(upload.ok()) << job;
    EXPECT_EQ(upload.status().code(), absl::StatusCode::kInvalidArgument) << job;
  }
  struct stat st;
  EXPECT_NE(::stat((dir + "/x").c_str(), &st), 0);
}

class LimitedServerTest : public GrpcServiceTest {
 protected:
  void Configure(ServerOptions* options) override {
    root_ = testing::NewTempDir("data_root");
    options->limits.max_message_bytes = 1 << 20;
    options->limits.max_spec_bytes = 4096;
    options->limits.max_watch_streams_per_client = 2;
    options->limits.max_watch_lag_events = 16;
    options->limits.max_upload_chunk_bytes = 1024;
    options->limits.max_checkpoint_bytes = 64 << 10;
    options->limits.data_roots = *PathConfinement::Create({root_});
  }

  grpc::Status UploadInChunks(const std::string& worker, const std::string& job, int64_t announced,
                              const std::string& data, size_t chunk) {
    grpc::ClientContext context;
    dino::v1::UploadCheckpointResponse response;
    auto writer = workers_->UploadCheckpoint(&context, &response);
    dino::v1::UploadCheckpointRequest part;
    auto* header = part.mutable_header();
    header->set_worker_id(worker);
    header->set_job_id(job);
    header->set_attempt(1);
    header->set_step(10);
    header->set_size_bytes(announced);
    writer->Write(part);
    for (size_t offset = 0; offset < data.size(); offset += chunk) {
      part.set_data(data.substr(offset, chunk));
      if (!writer->Write(part)) break;
    }
    part.set_sha256(Sha256::Of(data));
    writer->Write(part);
    writer->WritesDone();
    return writer->Finish();
  }

  std::vector<dino::v1::CheckpointInfo> Checkpoints(const std::string& job) {
    grpc::ClientContext context;
    dino::v1::ListCheckpointsRequest request;
    request.set_job_id(job);
    dino::v1::ListCheckpointsResponse response;
    EXPECT_TRUE(jobs_->ListCheckpoints(&context, request, &response).ok());
    return {response.checkpoints().begin(), response.checkpoints().end()};
  }

  grpc::Status Download(const std::string& job, const std::string& checkpoint) {
    grpc::ClientContext context;
    dino::v1::DownloadCheckpointRequest request;
    request.set_job_id(job);
    request.set_checkpoint_id(checkpoint);
    auto reader = jobs_->DownloadCheckpoint(&context, request);
    dino::v1::DownloadCheckpointResponse chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish();
  }

  std::string root_;
};

TEST_F(LimitedServerTest, SubmitEnforcesMessageSizeSpecSizeAndDataRoots) {
  dino::v1::JobSpec spec = testing::TinySpec();
  (*spec.mutable_labels())["huge"] = std::string(2 << 20, 'x');
  grpc::Status too_big = TrySubmit(spec, nullptr);
  EXPECT_EQ(too_big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << too_big.error_message();

  spec = testing::TinySpec();
  (*spec.mutable_labels())["big"] = std::string(8192, 'x');
  grpc::Status over_spec = TrySubmit(spec, nullptr);
  EXPECT_EQ(over_spec.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(over_spec.error_message(), HasSubstr("--max-spec-bytes=4096"));

  spec = testing::TinySpec();
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IMAGE_FOLDER);
  spec.mutable_data()->set_path(root_ + "/../../etc");
  grpc::Status escape = TrySubmit(spec, nullptr);
  EXPECT_EQ(escape.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(escape.error_message(), HasSubstr("data.path"));
  EXPECT_THAT(escape.error_message(), HasSubstr(root_));
  spec.mutable_data()->set_path("/etc");
  EXPECT_EQ(TrySubmit(spec, nullptr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  spec.mutable_data()->set_path(root_ + "/imagenet");
  grpc::Status inside = TrySubmit(spec, nullptr);
  EXPECT_TRUE(inside.ok()) << inside.error_message();

  // Nothing rejected was stored.
  grpc::ClientContext context;
  dino::v1::ListJobsResponse jobs;
  ASSERT_TRUE(jobs_->ListJobs(&context, dino::v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 1);
}

TEST_F(LimitedServerTest, WatchStreamsPerClient) {
  std::string job;
  ASSERT_TRUE(TrySubmit(testing::TinySpec(), &job).ok());
  dino::v1::WatchJobRequest request;
  request.set_job_id(job);
  dino::v1::JobEvent event;
  auto open_watch = [&](grpc::ClientContext* context) {
    auto reader = jobs_->WatchJob(context, request);
    EXPECT_TRUE(reader->Read(&event));  // The stream is registered once an event arrives.
    return reader;
  };
  grpc::ClientContext c1, c2, c3, c4;
  auto w1 = open_watch(&c1);
  auto w2 = open_watch(&c2);
  auto w3 = jobs_->WatchJob(&c3, request);
  EXPECT_FALSE(w3->Read(&event));
  grpc::Status refused = w3->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max-watch-streams=2"));

  c1.TryCancel();
  while (w1->Read(&event)) {
  }
  w1->Finish();
  // The slot comes back once the server has seen the cancel; poll briefly.
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    auto reader = jobs_->WatchJob(&context, request);
    admitted = reader->Read(&event);
    context.TryCancel();
    while (reader->Read(&event)) {
    }
    reader->Finish();
    if (!admitted) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(admitted);
  c2.TryCancel();
  while (w2->Read(&event)) {
  }
  w2->Finish();
}

TEST_F(LimitedServerTest, AWatcherTooFarBehindEndsUnavailableAndResumesWithoutLosingEvents) {
  std::string job;
  ASSERT_TRUE(TrySubmit(testing::TinySpec(), &job).ok());
  const std::string worker = StartAttempt();
  {
    grpc::ClientContext context;
    dino::v1::ReportProgressRequest request;
    request.set_worker_id(worker);
    request.set_job_id(job);
    request.set_attempt(1);
    for (int step = 0; step < 40; ++step) request.add_stats()->set_step(step);
    dino::v1::ReportProgressResponse response;
    ASSERT_TRUE(workers_->ReportProgress(&context, request, &response).ok());
  }
  // QUEUED, RUNNING and 40 progress events wait in the store: more than one stream may queue.
  // Each stream's slot (2 per client here) is free again before its status arrives, so the
  // resumed streams are never refused.
  int64_t last_index = 0;
  int cut_offs = 0;
  while (last_index < 42) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    dino::v1::WatchJobRequest request;
    request.set_job_id(job);
    request.set_after_index(last_index);
    auto reader = jobs_->WatchJob(&context, request);
    dino::v1::JobEvent event;
    int got = 0;
    while (last_index < 42 && reader->Read(&event)) {
      EXPECT_EQ(event.index(), last_index + 1);
      last_index = event.index();
      ++got;
    }
    if (last_index < 42) {
      grpc::Status status = reader->Finish();
      ASSERT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("--max-watch-lag-events"));
      // Marked as a planned resume point, which clients resume from at once.
      const auto& trailers = context.GetServerTrailingMetadata();
      const auto marker = trailers.find(kWatchResumeMetadataKey);
      ASSERT_NE(marker, trailers.end());
      EXPECT_EQ(std::string(marker->second.data(), marker->second.size()), "1");
      EXPECT_EQ(got, 16);
      ++cut_offs;
    } else {
      context.TryCancel();
      while (reader->Read(&event)) {
      }
      reader->Finish();
    }
  }
  EXPECT_EQ(cut_offs, 2);  // 16 + 16 + 10.
}

TEST_F(LimitedServerTest, UploadLimitsKeepTheStoredCheckpointsIntact) {
  std::string job;
  ASSERT_TRUE(TrySubmit(testing::TinySpec(), &job).ok());
  const std::string worker = StartAttempt();

  const std::string good(3000, 'g');
  grpc::Status ok = UploadInChunks(worker, job, 3000, good, 1000);
  ASSERT_TRUE(ok.ok()) << ok.error_message();

  grpc::Status huge = UploadInChunks(worker, job, int64_t{1} << 40, good, 1000);
  EXPECT_EQ(huge.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(huge.error_message(), HasSubstr("--max-checkpoint-bytes=65536"));
  grpc::Status chunky = UploadInChunks(worker, job, 3000, std::string(3000, 'c'), 3000);
  EXPECT_EQ(chunky.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(chunky.error_message(), HasSubstr("--max-upload-chunk-bytes=1024"));
  grpc::Status escape = UploadInChunks(worker, "../" + job, 3000, good, 1000);
  EXPECT_FALSE(escape.ok());

  std::vector<dino::v1::CheckpointInfo> stored = Checkpoints(job);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].sha256(), Sha256::Of(good));
  EXPECT_TRUE(Download(job, stored[0].id()).ok());

  // Ids that try to name files are unknown ids, never paths.
  for (const std::string& id : std::vector<std::string>{
           "../x", "../../coordinator.db", "../" + job + "/" + stored[0].id() + ".ckpt",
           stored[0].id() + ".ckpt", "/etc/passwd", std::string("ckpt-1\0x", 8)}) {
    grpc::Status status = Download(job, id);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << id;
  }
  for (const std::string& other_job : std::vector<std::string>{"../" + job, job + "/..", ".."}) {
    EXPECT_EQ(Download(other_job, "latest").error_code(), grpc::StatusCode::NOT_FOUND) << other_job;
  }
}

}  // namespace
}  // namespace dino::server
