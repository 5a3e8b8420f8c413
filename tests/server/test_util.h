// Helpers shared by the coordinator tests: temporary directories, a minimal valid spec, and a
// WorkerChannel / EventSink that record what the Coordinator sends.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_system.h"
#include "dino/v1/job.pb.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/spec/tiny_spec.h"

namespace dino::server::testing {

// A fresh, empty directory under the test temp dir. mkdtemp makes it unique: ctest runs every
// case in its own process, and a name made from the pid alone met a directory left behind by an
// earlier process with the same (reused) pid.
inline std::string NewTempDir(const std::string& name) {
  std::string pattern = absl::StrCat(::testing::TempDir(), "/dino_server_", name, "_XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << pattern << ") failed";
  }
  return pattern;
}

using ::dino::spec::testing::TinySpec;

class RecordingChannel final : public WorkerChannel {
 public:
  void Send(const dino::v1::CoordinatorMessage& message) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(message);
  }
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    closed_ = status;
    is_closed_ = true;
  }
  std::vector<dino::v1::CoordinatorMessage> Take() {
    absl::MutexLock lock(&mu_);
    std::vector<dino::v1::CoordinatorMessage> out;
    out.swap(messages_);
    return out;
  }
  bool closed() {
    absl::MutexLock lock(&mu_);
    return is_closed_;
  }

 private:
  absl::Mutex mu_;
  std::vector<dino::v1::CoordinatorMessage> messages_ ABSL_GUARDED_BY(mu_);
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
  bool is_closed_ ABSL_GUARDED_BY(mu_) = false;
};

class RecordingSink final : public EventSink {
 public:
  void OnEvent(const dino::v1::JobEvent& event) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  void OnEnd(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    end_ = status;
    ended_ = true;
  }
  std::vector<dino::v1::JobEvent> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  bool ended() {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  absl::Status end_status() {
    absl::MutexLock lock(&mu_);
    return end_;
  }

 private:
  absl::Mutex mu_;
  std::vector<dino::v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::Status end_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dino::server::testing
