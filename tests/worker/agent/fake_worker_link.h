// FakeWorkerLink: an in-memory WorkerLink for the agent, runner and reporter tests. It records
// every call in order, answers with a status a test chooses per call kind, lets a test block an
// upload until its CancelToken is cancelled, and serves a Connect stream whose coordinator side
// the test drives (Push, EndStream) and whose worker side it inspects (heartbeats).
//
// Thread-safety: every method may be called from any thread. Failure: none of its own.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "worker/agent/worker_link.h"

namespace dino::agent::testing {

// A fresh directory under $TEST_TMPDIR (else /tmp).
inline std::string NewTempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != 0 ? base : "/tmp") + "/" + name + "_XXXXXX";
  return ::mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
}

// One rank of a one-rank attempt whose spec converts to RunOptions (a synthetic dataset).
inline dino::v1::Assignment TestAssignment() {
  dino::v1::Assignment a;
  a.set_job_id("job-1");
  a.set_attempt(2);
  a.set_rank(0);
  a.set_world_size(1);
  dino::v1::JobSpec& spec = *a.mutable_spec();
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_SYNTHETIC);
  spec.mutable_augmentation()->set_global_crop_size(32);
  spec.mutable_augmentation()->set_local_crop_size(16);
  spec.mutable_model()->set_patch_size(8);
  spec.mutable_optim()->set_epochs(2);
  return a;
}

// Polls `condition` every millisecond (real time) until it holds or `deadline` passes.
inline bool WaitFor(const std::function<bool()>& condition,
                    absl::Duration deadline = absl::Seconds(60)) {
  const absl::Time end = absl::Now() + deadline;
  while (!condition()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class FakeWorkerLink final : public WorkerLink {
 public:
  struct Call {
    std::string kind;  // "register", "progress", "upload", "result", "download"
    absl::Time time;   // On the clock.
    absl::Status status;
    dino::v1::RegisterRequest register_request;
    dino::v1::ReportProgressRequest progress;
    dino::v1::CheckpointUploadHeader upload;
    dino::v1::ReportResultRequest result;
  };
  // Decides a call's answer before it is recorded; OK lets it succeed.
  using Answer = std::function<absl::Status(const std::string& kind)>;
  // Runs inside UploadCheckpoint (after Answer said OK); its status is the upload's.
  using UploadHook = std::function<absl::Status(const dino::v1::CheckpointUploadHeader& header,
                                                CancelToken* cancel)>;

  FakeWorkerLink(Clock* clock, FileSystem* fs) : clock_(clock), fs_(fs) {}

  void SetAnswer(Answer answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  void SetUploadHook(UploadHook hook) {
    absl::MutexLock lock(&mu_);
    upload_hook_ = std::move(hook);
  }
  void SetRegisterResponse(dino::v1::RegisterResponse response) {
    absl::MutexLock lock(&mu_);
    register_response_ = std::move(response);
  }

  std::vector<Call> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<Call> calls(const std::string& kind) const {
    absl::MutexLock lock(&mu_);
    std::vector<Call> out;
    for (const Call& c : calls_) {
      if (c.kind == kind) out.push_back(c);
    }
    return out;
  }
  int count(const std::string& kind) const { return static_cast<int>(calls(kind).size()); }
  int count_ok(const std::string& kind) const {
    int n = 0;
    for (const Call& c : calls(kind)) n += c.status.ok() ? 1 : 0;
    return n;
  }

  // The coordinator side of the current Connect stream.
  void Push(dino::v1::CoordinatorMessage message) {
    absl::MutexLock lock(&mu_);
    inbox_.push_back(std::move(message));
  }
  void EndStream() {
    absl::MutexLock lock(&mu_);
    stream_ended_ = true;
  }
  int streams() const {
    absl::MutexLock lock(&mu_);
    return streams_;
  }
  int heartbeats() const {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }

  std::string address() const override { return "fake"; }

  absl::StatusOr<dino::v1::RegisterResponse> Register(
      const dino::v1::RegisterRequest& request) override {
    Call call = Begin("register");
    call.register_request = request;
    const absl::Status status = call.status;
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    if (!status.ok()) return status;
    return register_response_;
  }

  std::unique_ptr<ConnectStream> Connect() override {
    absl::MutexLock lock(&mu_);
    ++streams_;
    stream_ended_ = false;
    inbox_.clear();
    return std::make_unique<Stream>(this);
  }

  absl::StatusOr<dino::v1::ReportProgressResponse> ReportProgress(
      const dino::v1::ReportProgressRequest& request, CancelToken* /*cancel*/) override {
    Call call = Begin("progress");
    call.progress = request;
    const absl::Status status = call.status;
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    if (!status.ok()) return status;
    return dino::v1::ReportProgressResponse();
  }

  absl::Status ReportResult(const dino::v1::ReportResultRequest& request,
                            CancelToken* /*cancel*/) override {
    Call call = Begin("result");
    call.result = request;
    const absl::Status status = call.status;
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    return status;
  }

  absl::StatusOr<dino::v1::CheckpointInfo> UploadCheckpoint(dino::v1::CheckpointUploadHeader header,
                                                            const std::string& path,
                                                            CancelToken* cancel) override {
    Call call = Begin("upload");
    if (call.status.ok() && !fs_->Exists(path)) call.status = absl::NotFoundError(path);
    UploadHook hook;
    {
      absl::MutexLock lock(&mu_);
      hook = upload_hook_;
    }
    if (call.status.ok() && hook) call.status = hook(header, cancel);
    call.upload = header;
    const absl::Status status = call.status;
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    if (!status.ok()) return status;
    dino::v1::CheckpointInfo info;
    info.set_job_id(header.job_id());
    info.set_step(header.step());
    return info;
  }

  absl::Status DownloadCheckpoint(const std::string& /*job_id*/,
                                  const std::string& /*checkpoint_id*/,
                                  const std::string& /*expected_sha256*/,
                                  const std::string& /*path*/, CancelToken* /*cancel*/) override {
    Call call = Begin("download");
    const absl::Status status = call.status.ok() ? absl::UnimplementedError("fake") : call.status;
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    return status;
  }

 private:
  class Stream final : public ConnectStream {
   public:
    explicit Stream(FakeWorkerLink* link) : link_(link) {}
    bool Read(dino::v1::CoordinatorMessage* message) override {
      absl::MutexLock lock(&link_->mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu_) {
        return cancelled_ || link_->stream_ended_ || !link_->inbox_.empty();
      };
      link_->mu_.Await(absl::Condition(&ready));
      if (cancelled_ || link_->inbox_.empty()) return false;
      *message = std::move(link_->inbox_.front());
      link_->inbox_.pop_front();
      return true;
    }
    bool Write(const dino::v1::WorkerMessage& message) override {
      absl::MutexLock lock(&link_->mu_);
      if (cancelled_ || link_->stream_ended_) return false;
      if (message.has_heartbeat()) ++link_->heartbeats_;
      return true;
    }
    void WritesDone() override {}
    void Cancel() override {
      absl::MutexLock lock(&link_->mu_);
      cancelled_ = true;
    }
    absl::Status Finish() override { return absl::UnavailableError("stream ended"); }

   private:
    FakeWorkerLink* const link_;
    bool cancelled_ = false;  // Guarded by link_->mu_.
  };

  Call Begin(const std::string& kind) {
    Call call;
    call.kind = kind;
    call.time = clock_->Now();
    Answer answer;
    {
      absl::MutexLock lock(&mu_);
      answer = answer_;
    }
    if (answer) call.status = answer(kind);
    return call;
  }

  Clock* const clock_;
  FileSystem* const fs_;
  mutable absl::Mutex mu_;
  Answer answer_ ABSL_GUARDED_BY(mu_);
  UploadHook upload_hook_ ABSL_GUARDED_BY(mu_);
  dino::v1::RegisterResponse register_response_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::deque<dino::v1::CoordinatorMessage> inbox_ ABSL_GUARDED_BY(mu_);
  bool stream_ended_ ABSL_GUARDED_BY(mu_) = false;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
};

// Advances `clock` in `step`s whenever some thread sleeps on it, until `done` holds (or a real-time
// deadline passes). Returns whether `done` held.
inline bool AdvanceUntil(SimulatedClock* clock, const std::function<bool()>& done,
                         absl::Duration step = absl::Milliseconds(10),
                         absl::Duration deadline = absl::Seconds(60)) {
  return WaitFor(
      [&] {
        if (done()) return true;
        if (clock->sleepers() > 0) clock->Advance(step);
        return false;
      },
      deadline);
}

}  // namespace dino::agent::testing
