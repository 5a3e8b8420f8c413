// CoordinatorFixture: a Coordinator on a SQLite store and a checkpoint registry in a fresh data
// dir, driven by a simulated clock, with helpers to add workers (recording channels), submit jobs,
// commit checkpoints and report results. Its store can be told to fail writes (faulty_). Shared by
// the coordinator tests.
#pragma once

#include <memory>
#include <string>

#include "common/sha256.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/server/faulty_store.h"
#include "tests/server/test_util.h"

namespace dino::server::testing {

class CoordinatorFixture : public ::testing::Test {
 protected:
  struct TestWorker {
    std::string id;
    std::shared_ptr<RecordingChannel> channel;
  };

  void SetUp() override {
    dir_ = NewTempDir("coord");
    Open();
  }

  // (Re)opens the store, registry and coordinator on dir_, as a restarted coordinator would.
  void Open() {
    coordinator_.reset();
    registry_.reset();
    store_.reset();
    auto store = OpenSqliteStore(dir_ + "/db");
    ASSERT_TRUE(store.ok()) << store.status();
    auto faulty = std::make_unique<FaultyStore>(std::move(*store));
    faulty_ = faulty.get();
    store_ = std::move(faulty);
    registry_ =
        std::make_unique<CheckpointRegistry>(store_.get(), DefaultFileSystem(), dir_ + "/blobs");
    coordinator_ = std::make_unique<Coordinator>(store_.get(), registry_.get(), &clock_, options_);
    ASSERT_TRUE(coordinator_->Recover().ok());
  }

  // Registers a worker on the next free rendezvous port and attaches a recording channel.
  TestWorker AddWorker(const std::string& device = "cpu", const std::string& previous = "") {
    dino::v1::RegisterRequest request;
    request.set_name("worker");
    request.set_device(device);
    request.set_threads(2);
    request.set_rendezvous_address("127.0.0.1:" + std::to_string(29500 + next_port_++));
    request.set_previous_worker_id(previous);
    auto response = coordinator_->RegisterWorker(request);
    EXPECT_TRUE(response.ok()) << response.status();
    TestWorker worker{response->worker_id(), std::make_shared<RecordingChannel>()};
    EXPECT_TRUE(coordinator_->AttachWorker(worker.id, worker.channel).ok());
    return worker;
  }

  std::string Submit(const dino::v1::JobSpec& spec) {
    auto response = coordinator_->SubmitJob(spec);
    EXPECT_TRUE(response.ok()) << response.status();
    return response->job().id();
  }

  // Begins an upload of `data` as the checkpoint of `step` from worker w and sends every byte,
  // without committing it.
  absl::StatusOr<std::unique_ptr<CheckpointUpload>> SendCheckpoint(const std::string& job_id,
                                                                   int attempt, const TestWorker& w,
                                                                   int64_t step,
                                                                   const std::string& data) {
    dino::v1::CheckpointUploadHeader header;
    header.set_worker_id(w.id);
    header.set_job_id(job_id);
    header.set_attempt(attempt);
    header.set_step(step);
    header.set_size_bytes(static_cast<int64_t>(data.size()));
    auto upload = coordinator_->BeginCheckpointUpload(header);
    if (!upload.ok()) return upload.status();
    absl::Status status = (*upload)->Append(data);
    if (!status.ok()) return status;
    return upload;
  }

  // Uploads `data` as the checkpoint of `step` from worker w and commits it with its sha256.
  absl::StatusOr<dino::v1::CheckpointInfo> UploadCheckpoint(const std::string& job_id, int attempt,
                                                            const TestWorker& w, int64_t step,
                                                            const std::string& data) {
    auto upload = SendCheckpoint(job_id, attempt, w, step, data);
    if (!upload.ok()) return upload.status();
    return coordinator_->FinishCheckpointUpload(std::move(*upload), Sha256::Of(data));
  }

  // A ReportProgress request from `w` for `job_id`'s attempt, without statistics yet.
  static dino::v1::ReportProgressRequest ProgressFrom(const TestWorker& w,
                                                      const std::string& job_id, int attempt = 1) {
    dino::v1::ReportProgressRequest request;
    request.set_worker_id(w.id);
    request.set_job_id(job_id);
    request.set_attempt(attempt);
    return request;
  }

  absl::Status Result(const std::string& job_id, int attempt, const TestWorker& w, int rank,
                      dino::v1::AttemptOutcome outcome,
                      dino::v1::FailureReason reason = dino::v1::FAILURE_REASON_UNSPECIFIED) {
    dino::v1::ReportResultRequest request;
    request.set_worker_id(w.id);
    request.set_job_id(job_id);
    request.set_attempt(attempt);
    request.set_rank(rank);
    request.set_outcome(outcome);
    request.set_failure_reason(reason);
    request.set_message("test");
    return coordinator_->ReportResult(request);
  }

  std::string dir_;
  SimulatedClock clock_;
  // What Open() gives the Coordinator; set before Open() (SetUp opens with the defaults).
  CoordinatorOptions options_;
  int next_port_ = 0;
  std::unique_ptr<Store> store_;
  FaultyStore* faulty_ = nullptr;  // store_, to inject write failures.
  std::unique_ptr<CheckpointRegistry> registry_;
  std::unique_ptr<Coordinator> coordinator_;
};

}  // namespace dino::server::testing
