#include "server/worker_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "proto/dino/time_util.h"

namespace dino::server {
namespace {

absl::StatusOr<dino::v1::DeviceKind> ParseDevice(const std::string& device) {
  if (device == "cpu") return dino::v1::DEVICE_KIND_CPU;
  int index = 0;
  if (device == "cuda" || (absl::StartsWith(device, "cuda:") &&
                           absl::SimpleAtoi(device.substr(5), &index) && index >= 0)) {
    return dino::v1::DEVICE_KIND_CUDA;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device must be \"cpu\" or \"cuda:N\", got \"", device, "\""));
}

// The number in a worker id ("w-12" -> 12), its registration order.
int64_t SeqOf(const std::string& id) {
  int64_t seq = 0;
  const size_t dash = id.rfind('-');
  if (dash != std::string::npos && absl::SimpleAtoi(id.substr(dash + 1), &seq)) return seq;
  return 0;
}

void ClearAttempt(dino::v1::WorkerInfo& info) {
  info.clear_job_id();
  info.clear_attempt();
  info.clear_rank();
}

}  // namespace

void WorkerRegistry::Restore(std::vector<dino::v1::WorkerInfo> records) {
  const absl::Time now = clock_->Now();
  for (dino::v1::WorkerInfo& info : records) {
    if (info.state() == dino::v1::WORKER_STATE_DEAD) continue;
    Worker worker;
    worker.seq = SeqOf(info.id());
    worker.last_seen = now;
    worker.info = std::move(info);
    const std::string id = worker.info.id();
    workers_.emplace(id, std::move(worker));
  }
}

absl::StatusOr<dino::v1::DeviceKind> WorkerRegistry::CheckRegistration(
    const dino::v1::RegisterRequest& request) {
  DINO_ASSIGN_OR_RETURN(dino::v1::DeviceKind kind, ParseDevice(request.device()));
  if (request.rendezvous_address().empty()) {
    return absl::InvalidArgumentError("rendezvous_address must be set (host:port)");
  }
  if (request.threads() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be >= 0, got ", request.threads()));
  }
  return kind;
}

absl::StatusOr<WorkerRegistry::Worker*> WorkerRegistry::Register(
    const dino::v1::RegisterRequest& request, dino::v1::DeviceKind kind,
    const std::string& credential) {
  Worker* worker = nullptr;
  auto previous = workers_.find(request.previous_worker_id());
  if (!request.previous_worker_id().empty() && previous != workers_.end() &&
      previous->second.info.state() != dino::v1::WORKER_STATE_DEAD) {
    DINO_RETURN_IF_ERROR(CheckCredential(request.previous_worker_id(), credential));
    worker = &previous->second;  // Reconciled: same identity.
  } else {
    DINO_ASSIGN_OR_RETURN(int64_t seq, store_->NextSequence("worker"));
    Worker added;
    added.seq = seq;
    added.info.set_id(absl::StrCat("w-", seq));
    added.info.set_state(dino::v1::WORKER_STATE_IDLE);
    *added.info.mutable_register_time() = ToMicrosTimestampProto(clock_->Now());
    worker = &workers_.emplace(added.info.id(), std::move(added)).first->second;
  }
  dino::v1::WorkerInfo& info = worker->info;
  info.set_registered_by(credential);
  info.set_name(request.name().empty() ? request.rendezvous_address() : request.name());
  info.set_hostname(request.hostname());
  info.set_device(request.device());
  info.set_device_kind(kind);
  info.set_memory_bytes(request.memory_bytes());
  info.set_threads(request.threads());
  info.set_rendezvous_address(request.rendezvous_address());
  info.set_version(request.version());
  Touch(*worker);
  return worker;
}

WorkerRegistry::Worker* WorkerRegistry::Find(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : &it->second;
}

absl::StatusOr<WorkerRegistry::Worker*> WorkerRegistry::FindLive(const std::string& worker_id) {
  Worker* worker = Find(worker_id);
  if (worker == nullptr || worker->info.state() == dino::v1::WORKER_STATE_DEAD) {
    return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is unknown; register again"));
  }
  return worker;
}

absl::Status WorkerRegistry::CheckCredential(const std::string& worker_id,
                                             const std::string& credential) const {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::OkStatus();
  const std::string& owner = it->second.info.registered_by();
  if (owner.empty() || owner == credential) return absl::OkStatus();
  DINO_LOG(WARNING) << "\"" << credential << "\" tried to act as worker " << worker_id
                    << ", which \"" << owner << "\" registered";
  return absl::PermissionDeniedError(absl::StrCat("worker ", worker_id,
                                                  " was registered by another credential; \"",
                                                  credential, "\" may not act as it"));
}

void WorkerRegistry::Attach(Worker& worker, std::shared_ptr<WorkerChannel> channel) {
  if (worker.channel != nullptr && worker.channel != channel) {
    worker.channel->Close(absl::AbortedError("replaced by a newer Connect stream"));
  }
  worker.channel = std::move(channel);
  Touch(worker);
}

WorkerRegistry::Worker* WorkerRegistry::Detach(const std::string& worker_id,
                                               const WorkerChannel* channel) {
  Worker* worker = Find(worker_id);
  if (worker == nullptr || worker->channel.get() != channel) return nullptr;
  worker->channel = nullptr;
  return worker;
}

void WorkerRegistry::Send(const std::string& worker_id,
                          const dino::v1::CoordinatorMessage& message) {
  Worker* worker = Find(worker_id);
  if (worker != nullptr && worker->channel != nullptr) worker->channel->Send(message);
}

void WorkerRegistry::CloseAll(const absl::Status& status) {
  for (auto& [id, worker] : workers_) {
    if (worker.channel != nullptr) worker.channel->Close(status);
    worker.channel = nullptr;
  }
}

void WorkerRegistry::ForgetDead(absl::Duration retention) {
  const absl::Time now = clock_->Now();
  for (auto it = workers_.begin(); it != workers_.end();) {
    const Worker& worker = it->second;
    if (worker.info.state() == dino::v1::WORKER_STATE_DEAD && now - worker.last_seen > retention) {
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<WorkerRegistry::Worker*> WorkerRegistry::Silent(absl::Duration timeout) {
  const absl::Time now = clock_->Now();
  std::vector<Worker*> silent;
  for (auto& [id, worker] : workers_) {
    if (worker.info.state() != dino::v1::WORKER_STATE_DEAD && now - worker.last_seen > timeout) {
      silent.push_back(&worker);
    }
  }
  return silent;
}

void WorkerRegistry::Save(const Worker& worker) {
  absl::Status status = store_->SaveWorker(worker.info);
  if (!status.ok()) {
    DINO_LOG(ERROR) << "could not save worker " << worker.info.id() << ": " << status;
  }
}

void WorkerRegistry::SetIdle(Worker& worker) {
  if (worker.info.state() == dino::v1::WORKER_STATE_DEAD) return;
  worker.info.set_state(dino::v1::WORKER_STATE_IDLE);
  ClearAttempt(worker.info);
  Save(worker);
}

void WorkerRegistry::SetDead(Worker& worker, const std::string& why) {
  DINO_LOG(WARNING) << "worker " << worker.info.id() << " (" << worker.info.name()
                    << ") is dead: " << why;
  worker.info.set_state(dino::v1::WORKER_STATE_DEAD);
  ClearAttempt(worker.info);
  if (worker.channel != nullptr) {
    worker.channel->Close(absl::NotFoundError(
        absl::StrCat("worker ", worker.info.id(), " was declared dead; register again")));
    worker.channel = nullptr;
  }
  Save(worker);
}

void WorkerRegistry::Replace(dino::v1::WorkerInfo info) {
  Worker* worker = Find(info.id());
  if (worker != nullptr) worker->info = std::move(info);
}

std::vector<dino::v1::WorkerInfo> WorkerRegistry::List(bool include_dead) const {
  std::vector<const Worker*> listed;
  for (const auto& [id, worker] : workers_) {
    if (include_dead || worker.info.state() != dino::v1::WORKER_STATE_DEAD) {
      listed.push_back(&worker);
    }
  }
  std::sort(listed.begin(), listed.end(),
            [](const Worker* a, const Worker* b) { return a->seq < b->seq; });
  std::vector<dino::v1::WorkerInfo> out;
  for (const Worker* worker : listed) {
    out.push_back(worker->info);
    *out.back().mutable_last_heartbeat() = ToMicrosTimestampProto(worker->last_seen);
  }
  return out;
}

std::vector<WorkerRegistry::Worker*> WorkerRegistry::InState(dino::v1::WorkerState state) {
  std::vector<Worker*> out;
  for (auto& [id, worker] : workers_) {
    if (worker.info.state() == state) out.push_back(&worker);
  }
  return out;
}

WorkerRegistry::Fleet WorkerRegistry::FleetOf(dino::v1::DeviceKind kind) const {
  Fleet fleet;
  for (const auto& [id, worker] : workers_) {
    if (worker.info.state() == dino::v1::WORKER_STATE_DEAD || worker.info.device_kind() != kind) {
      continue;
    }
    ++fleet.registered;
    fleet.oldest_registration =
        std::min(fleet.oldest_registration, FromTimestampProto(worker.info.register_time()));
  }
  return fleet;
}

RegisteredWorkers WorkerRegistry::LiveByDevice() const {
  RegisteredWorkers registered;
  for (const auto& [id, worker] : workers_) {
    if (worker.info.state() != dino::v1::WORKER_STATE_DEAD) ++registered[worker.info.device_kind()];
  }
  return registered;
}

std::vector<IdleWorker> WorkerRegistry::Schedulable() const {
  std::vector<const Worker*> idle;
  for (const auto& [id, worker] : workers_) {
    if (worker.info.state() == dino::v1::WORKER_STATE_IDLE && worker.channel != nullptr &&
        !worker.leaving && !worker.dropping.has_value()) {
      idle.push_back(&worker);
    }
  }
  std::sort(idle.begin(), idle.end(),
            [](const Worker* a, const Worker* b) { return a->seq < b->seq; });
  std::vector<IdleWorker> out;
  for (const Worker* worker : idle) {
    out.push_back(IdleWorker{worker->info.id(), worker->info.device_kind()});
  }
  return out;
}

std::map<dino::v1::WorkerState, int> WorkerRegistry::CountByState() const {
  std::map<dino::v1::WorkerState, int> counts;
  for (const auto& [id, worker] : workers_) ++counts[worker.info.state()];
  return counts;
}

void WorkerRegistry::MarkDropping(const std::string& worker_id, const std::string& job_id,
                                  int32_t attempt) {
  Worker* worker = Find(worker_id);
  if (worker != nullptr) worker->dropping = Worker::Attempt{job_id, attempt};
}

bool WorkerRegistry::SawRunning(Worker& worker, const dino::v1::RunningAttempt* running) {
  if (!worker.dropping.has_value()) return false;
  if (running != nullptr && running->job_id() == worker.dropping->job_id &&
      running->attempt() == worker.dropping->attempt) {
    return false;
  }
  worker.dropping.reset();
  return true;
}

}  // namespace dino::server
