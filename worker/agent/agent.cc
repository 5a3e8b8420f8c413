#include "worker/agent/agent.h"

#include <unistd.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/logging.h"
#include "proto/dino/time_util.h"

namespace dino::agent {
namespace {

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

constexpr absl::Duration kPollInterval = absl::Milliseconds(50);

int64_t PhysicalMemory() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<int64_t>(pages) * size : 0;
}

}  // namespace

Agent::Agent(AgentOptions options, WorkerLink* link, FileSystem* fs, Clock* clock)
    : options_(std::move(options)), link_(link), fs_(fs), clock_(clock) {}

Agent::~Agent() {
  Shutdown();
  std::unique_ptr<AttemptRunner> runner;
  {
    absl::MutexLock lock(&mu_);
    runner = std::move(runner_);
  }
  runner.reset();  // Aborts and joins.
}

std::string Agent::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

void Agent::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  if (stream_ != nullptr) stream_->Cancel();
  if (runner_ != nullptr) runner_->Abort("worker shutting down");
}

void Agent::Leave(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (leaving_ || shutdown_) return;
  leaving_ = true;
  leave_reason_ = reason;
  DINO_LOG(INFO) << "leaving the pool (" << reason << ")"
                 << (runner_ != nullptr && !runner_->done() ? " after the current step" : "");
  if (runner_ != nullptr) runner_->Preempt(reason);
}

std::optional<dino::v1::RunningAttempt> Agent::Running() const {
  absl::MutexLock lock(&mu_);
  if (runner_ == nullptr || runner_->done()) return std::nullopt;
  return runner_->running();
}

void Agent::ReapFinishedRunner() {
  std::unique_ptr<AttemptRunner> finished;
  {
    absl::MutexLock lock(&mu_);
    if (runner_ != nullptr && runner_->done()) finished = std::move(runner_);
  }
  reaper_.Reap(std::move(finished));  // Joined on the reaper's thread, not this one.
}

bool Agent::RegisterOnce() {
  dino::v1::RegisterRequest request;
  const std::string host = Hostname();
  const std::string advertise = options_.advertise_host.empty() ? host : options_.advertise_host;
  request.set_name(options_.name.empty() ? absl::StrCat(host, ":", options_.runner.rendezvous_port)
                                         : options_.name);
  request.set_hostname(host);
  request.set_device(options_.runner.device);
  request.set_memory_bytes(options_.memory_bytes > 0 ? options_.memory_bytes : PhysicalMemory());
  request.set_threads(options_.runner.threads > 0
                          ? options_.runner.threads
                          : static_cast<int>(std::thread::hardware_concurrency()));
  request.set_rendezvous_address(absl::StrCat(advertise, ":", options_.runner.rendezvous_port));
  request.set_version("dinotrain 0.1");
  request.set_previous_worker_id(worker_id());
  ReapFinishedRunner();
  if (std::optional<dino::v1::RunningAttempt> running = Running()) {
    *request.mutable_running() = *running;
  }
  absl::StatusOr<dino::v1::RegisterResponse> response = link_->Register(request);
  if (!response.ok()) {
    DINO_LOG(WARNING) << "registering with " << link_->address() << ": " << response.status();
    return false;
  }
  absl::MutexLock lock(&mu_);
  worker_id_ = response->worker_id();
  if (response->has_heartbeat_interval()) {
    heartbeat_interval_ = absl::Milliseconds(std::max<int64_t>(
        50, absl::ToInt64Milliseconds(FromDurationProto(response->heartbeat_interval()))));
  }
  if (request.has_running() && !response->keep_running() && runner_ != nullptr) {
    runner_->Abort("the coordinator no longer runs this attempt");
  }
  DINO_LOG(INFO) << "registered with " << link_->address() << " as " << worker_id_;
  registered_ = true;
  return true;
}

void Agent::Dispatch(const dino::v1::CoordinatorMessage& message) {
  ReapFinishedRunner();
  if (message.has_assignment()) {
    const dino::v1::Assignment& a = message.assignment();
    std::unique_ptr<AttemptRunner> old;
    {
      absl::MutexLock lock(&mu_);
      if (leaving_) {
        DINO_LOG(WARNING) << "ignoring assignment " << a.job_id() << "/" << a.attempt()
                          << ": this worker is leaving";
        return;
      }
      if (runner_ != nullptr) {
        const auto& cur = runner_->assignment();
        if (cur.job_id() == a.job_id() && cur.attempt() == a.attempt()) return;  // Re-sent.
        DINO_LOG(WARNING) << "new assignment " << a.job_id() << "/" << a.attempt()
                          << " while running " << cur.job_id() << "/" << cur.attempt()
                          << "; aborting the old one";
        runner_->Abort("superseded by a new assignment");
        old = std::move(runner_);
      }
    }
    // The old attempt's store may hold the rendezvous port: it goes before the new one starts.
    // Its calls were cancelled by the abort, so this reader thread waits only for it to unwind.
    reaper_.Reap(std::move(old));
    reaper_.WaitIdle();
    DINO_LOG(INFO) << "assignment: " << a.job_id() << " attempt " << a.attempt() << " rank "
                   << a.rank() << "/" << a.world_size();
    absl::MutexLock lock(&mu_);
    runner_ = std::make_unique<AttemptRunner>(
        a, options_.runner, link_, [this] { return worker_id(); }, fs_, clock_);
    runner_->Start();
    return;
  }
  if (!message.has_cancel() && !message.has_abort()) return;
  const bool cancel = message.has_cancel();
  const std::string& job = cancel ? message.cancel().job_id() : message.abort().job_id();
  const int attempt = cancel ? message.cancel().attempt() : message.abort().attempt();
  const std::string& reason = cancel ? message.cancel().reason() : message.abort().reason();
  absl::MutexLock lock(&mu_);
  if (runner_ == nullptr || runner_->assignment().job_id() != job ||
      runner_->assignment().attempt() != attempt) {
    return;
  }
  if (cancel) {
    runner_->Cancel(reason);
  } else {
    runner_->Abort(reason);
  }
}

void Agent::ServeStream() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
  }
  std::unique_ptr<ConnectStream> stream = link_->Connect();
  {
    absl::MutexLock lock(&mu_);
    stream_ = stream.get();
    stream_done_ = false;
    if (shutdown_) stream->Cancel();  // Shutdown() came while connecting: end it the usual way.
  }
  absl::Mutex write_mu;
  dino::v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id());
  bool ok = stream->Write(hello);

  // Heartbeats (and Leaving) from a helper thread; reads (assignments) on this one.
  bool leaving_sent = false;  // On this stream; heartbeat thread only.
  std::thread heartbeats([&] {
    absl::Time next_beat = clock_->Now();
    while (true) {
      dino::v1::WorkerMessage out;
      bool leaving = false;
      absl::Duration interval;
      {
        absl::MutexLock lock(&mu_);
        auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stream_done_ || (leaving_ && !leaving_sent);
        };
        // Beats are due on the injected clock, which cannot wake this wait: poll it in short
        // real-time slices (also how a leaving worker notices its runner reported).
        mu_.AwaitWithTimeout(absl::Condition(&wake), kPollInterval);
        if (stream_done_) break;
        leaving = leaving_;
        interval = heartbeat_interval_;
        if (leaving && !leaving_sent) out.mutable_leaving()->set_reason(leave_reason_);
      }
      if (out.has_leaving()) {
        leaving_sent = true;
      } else {
        ReapFinishedRunner();
        std::optional<dino::v1::RunningAttempt> r = Running();
        if (leaving && !r.has_value()) {
          // Left: the attempt (if any) has reported. Close our side; the coordinator ends the
          // stream, declares this worker gone, and Run() returns.
          {
            absl::MutexLock lock(&mu_);
            shutdown_ = true;
          }
          absl::MutexLock lock(&write_mu);
          stream->WritesDone();
          break;
        }
        if (clock_->Now() < next_beat) continue;  // No beat due yet.
        next_beat = clock_->Now() + interval;
        if (r.has_value()) {
          *out.mutable_heartbeat()->mutable_running() = *r;
        } else {
          out.mutable_heartbeat();
        }
      }
      absl::MutexLock lock(&write_mu);
      if (!stream->Write(out)) break;
    }
  });
  dino::v1::CoordinatorMessage message;
  while (ok && stream->Read(&message)) Dispatch(message);
  {
    absl::MutexLock lock(&mu_);
    stream_done_ = true;
  }
  heartbeats.join();
  stream->Cancel();
  absl::Status status = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
  }
  DINO_LOG(WARNING) << "stream to " << link_->address() << " ended: " << status;
}

void Agent::Run() {
  Backoff backoff({absl::Milliseconds(250), absl::Seconds(5)});
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return;
    }
    bool left = false;
    {
      absl::MutexLock lock(&mu_);
      left = leaving_ && (runner_ == nullptr || runner_->done());
    }
    if (left) return;  // Leaving with nothing running, and no stream to say goodbye on.
    if (!registered_ && !RegisterOnce()) {
      clock_->SleepFor(backoff.Next());
      continue;
    }
    const absl::Time start = clock_->Now();
    ServeStream();
    // A stream that lived a while was a success: start the backoff over.
    if (clock_->Now() - start > absl::Seconds(10)) backoff.Reset();
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return;
    }
    // Re-register on every reconnect, so a restarted coordinator learns our running attempt.
    registered_ = false;
    clock_->SleepFor(backoff.Next());
  }
}

}  // namespace dino::agent
