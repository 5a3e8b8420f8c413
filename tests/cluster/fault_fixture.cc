#include "tests/cluster/fault_fixture.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/grpc_status.h"

namespace dino::cluster {
namespace {

bool Terminal(dino::v1::JobState state) {
  return state == dino::v1::JOB_STATE_SUCCEEDED || state == dino::v1::JOB_STATE_FAILED ||
         state == dino::v1::JOB_STATE_CANCELLED;
}

// A log line reads "LEVEL 2026-12-02T14:28:23.123Z file.cc:12] message".
std::optional<absl::Time> LineTime(const std::string& line) {
  std::vector<absl::string_view> words = absl::StrSplit(line, absl::MaxSplits(' ', 2));
  if (words.size() < 2) return std::nullopt;
  absl::Time time;
  std::string error;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", words[1], absl::UTCTimeZone(), &time, &error)) {
    return std::nullopt;
  }
  return time;
}

}  // namespace

void NetworkFaultTest::SetUp() {
  absl::StatusOr<std::unique_ptr<TestNetwork>> net = TestNetwork::Create();
  if (!net.ok()) GTEST_SKIP() << net.status().message();
  net_ = std::move(*net);
  absl::StatusOr<TestHost> client = net_->AddHost("client");
  absl::StatusOr<TestHost> coordinator = net_->AddHost("coordinator");
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  client_host_ = *client;
  coordinator_host_ = *coordinator;
  // From here on this thread, and the gRPC threads it starts, dial from the client host.
  ASSERT_TRUE(net_->Enter(client_host_).ok());
  const std::string name =
      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  cluster_ = std::make_unique<e2e::Cluster>(name);
  cluster_->PlaceCoordinator({coordinator_host_.netns, coordinator_host_.address});
  // Off loopback the coordinator wants TLS and data roots; the test hosts are a private network
  // and the tiny jobs read synthetic data.
  cluster_->coordinator_flags = {"--insecure", "--data-roots", cluster_->dir()};
}

void NetworkFaultTest::TearDown() {
  if (HasFailure() && cluster_ != nullptr) {
    std::cerr << cluster_->Logs() << (net_ != nullptr ? net_->Logs() : "") << "\n";
  }
  cluster_.reset();  // Every process first: a namespace with a process in it outlives its name.
  net_.reset();
}

void NetworkFaultTest::AddWorkerHosts(int count) {
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<TestHost> host = net_->AddHost(absl::StrCat("worker-", i));
    ASSERT_TRUE(host.ok()) << host.status();
    worker_hosts_.push_back(*host);
    cluster_->PlaceWorker(i, {host->netns, host->address});
  }
}

void NetworkFaultTest::Figure(const std::string& name, double value, const std::string& unit) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string line = absl::StrCat("figure: ", test, ": ", name, " = ", value, " ", unit);
  std::cout << line << std::endl;
  std::ofstream("network-fault-figures.txt", std::ios::app) << line << "\n";
  RecordProperty(name, absl::StrCat(value, " ", unit));
}

std::optional<absl::Time> NetworkFaultTest::WorkerLogTime(
    int i, absl::Time after, const std::vector<std::string>& needles) const {
  std::istringstream log(cluster_->WorkerLog(i));
  std::string line;
  // Log times have millisecond resolution; `after` does not.
  const absl::Time from = absl::FromUnixMillis(absl::ToUnixMillis(after));
  while (std::getline(log, line)) {
    std::optional<absl::Time> time = LineTime(line);
    if (!time.has_value() || *time < from) continue;
    for (const std::string& needle : needles) {
      if (line.find(needle) != std::string::npos) return time;
    }
  }
  return std::nullopt;
}

absl::StatusOr<absl::Time> NetworkFaultTest::WaitForWorkerLog(
    int i, absl::Time after, const std::vector<std::string>& needles, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (std::optional<absl::Time> time = WorkerLogTime(i, after, needles)) return *time;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("worker-", i, " logged none of [",
                                                  absl::StrJoin(needles, "; "), "] in ",
                                                  absl::FormatDuration(timeout)));
}

absl::StatusOr<dino::v1::WorkerInfo> NetworkFaultTest::WorkerNamed(const std::string& name) {
  absl::StatusOr<std::vector<dino::v1::WorkerInfo>> workers = cluster_->Workers(/*include_dead=*/true);
  if (!workers.ok()) return workers.status();
  std::optional<dino::v1::WorkerInfo> newest;
  for (const dino::v1::WorkerInfo& w : *workers) {
    if (w.name() != name) continue;
    if (!newest.has_value() || w.register_time().seconds() > newest->register_time().seconds() ||
        (w.register_time().seconds() == newest->register_time().seconds() &&
         w.register_time().nanos() >= newest->register_time().nanos())) {
      newest = w;
    }
  }
  if (!newest.has_value()) return absl::NotFoundError(absl::StrCat("no worker named ", name));
  return *newest;
}

absl::StatusOr<std::vector<dino::v1::JobEvent>> NetworkFaultTest::AllEvents(
    const std::string& id) {
  std::vector<dino::v1::JobEvent> events;
  for (int page = 0; page < 1000; ++page) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    dino::v1::WatchJobRequest request;
    request.set_job_id(id);
    request.set_after_index(events.empty() ? 0 : events.back().index());
    auto reader = cluster_->jobs()->WatchJob(&context, request);
    dino::v1::JobEvent event;
    bool ended = false;
    while (!ended && reader->Read(&event)) {
      events.push_back(event);
      ended = event.has_state_change() && Terminal(event.state_change().to_state());
    }
    if (ended) {
      context.TryCancel();
      return events;
    }
    absl::Status status = FromGrpcStatus(reader->Finish());
    if (!status.ok() && !absl::IsDeadlineExceeded(status)) {
      if (context.GetServerTrailingMetadata().count("dino-watch-resume") == 0) return status;
    }
  }
  return absl::InternalError("the job's event stream did not reach its end");
}

int NetworkFaultTest::WorkerOfRank(const dino::v1::Job& job, int attempt, int rank) {
  if (attempt < 1 || attempt > job.attempts_size()) return -1;
  for (const auto& r : job.attempts(attempt - 1).ranks()) {
    if (r.rank() != rank) continue;
    std::vector<std::string> parts = absl::StrSplit(r.worker_name(), '-');
    return parts.size() == 2 ? std::atoi(parts[1].c_str()) : -1;
  }
  return -1;
}

}  // namespace dino::cluster
