// WorkerRegistry: the coordinator's table of workers. It registers them (a new id from the
// Store's "worker" sequence, or the same identity again for a live worker that names its previous
// id), binds each id to the credential that registered it, keeps when each worker was last heard
// from, the push side of its Connect stream and whether it is leaving, finds the silent ones, and
// persists the records. It knows nothing of jobs: what a registration, a death or a departure
// does to an attempt is the Coordinator's to decide, and it records the outcome here.
//
// Ownership: borrows the Store and the Clock, which must outlive it; shares each WorkerChannel
// with its stream reactor. Owned by the Coordinator.
// Thread-safety: none of its own. The Coordinator holds it under its mutex: call every method with
// that mutex held. Channels are called with that mutex held too (WorkerChannel's rules). A
// Worker* stays valid until ForgetDead removes that worker.
// Failure: NOT_FOUND for an unknown or dead worker (it must register again); PERMISSION_DENIED
// for a credential other than the one that registered the id; INVALID_ARGUMENT for a malformed
// registration, naming the field; the Store's error when no new id can be drawn. A record the
// Store fails to save is logged and kept in memory, and written by its next save.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dino/v1/coordinator.pb.h"
#include "dino/v1/worker.pb.h"
#include "server/scheduler.h"
#include "server/store.h"
#include "server/worker_channel.h"

namespace dino::server {

class WorkerRegistry {
 public:
  struct Worker {
    dino::v1::WorkerInfo info;
    int64_t seq = 0;  // Registration order: ranks follow it.
    absl::Time last_seen;
    std::shared_ptr<WorkerChannel> channel;  // Null while it has no Connect stream.
    // Sent Leaving (or reported PREEMPTED): never scheduled again. In memory only: a worker that
    // is still leaving after a coordinator restart says so again on its next stream.
    bool leaving = false;
    // An attempt this worker was told to drop (its gang's attempt failed or was cancelled, or it
    // came back running one that is no longer current) and has not yet said it dropped. Until a
    // heartbeat or registration without that attempt arrives it is not Schedulable, so a new gang
    // never waits for a rank that is still inside the old one, or stopped there. In memory only:
    // after a coordinator restart the worker's registration says what it runs.
    struct Attempt {
      std::string job_id;
      int32_t attempt = 0;
    };
    std::optional<Attempt> dropping;
  };

  // Live workers of one device kind, for SubmitJob's check that a gang can form.
  struct Fleet {
    int64_t registered = 0;
    absl::Time oldest_registration = absl::InfiniteFuture();
  };

  WorkerRegistry(Store* store, Clock* clock) : store_(store), clock_(clock) {}
  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;

  // Recover: takes the stored records that are not dead, each seen now (so that it has one
  // liveness timeout to reconnect).
  void Restore(std::vector<dino::v1::WorkerInfo> records);

  // ---- Registration ----
  // The device kind of `request`, or INVALID_ARGUMENT naming its malformed field.
  static absl::StatusOr<dino::v1::DeviceKind> CheckRegistration(
      const dino::v1::RegisterRequest& request);
  // Registers `request` (whose device is `kind`, from CheckRegistration) for `credential`. The live
  // worker named by previous_worker_id keeps its id and state (PERMISSION_DENIED when another
  // credential registered it); otherwise a new IDLE worker is added. Either way its description
  // comes from the request, it is bound to `credential` and seen now. Not saved: the caller
  // settles its state first, then calls Save.
  absl::StatusOr<Worker*> Register(const dino::v1::RegisterRequest& request,
                                   dino::v1::DeviceKind kind, const std::string& credential);

  // ---- Lookup ----
  // Null when unknown (dead workers are known until ForgetDead).
  Worker* Find(const std::string& worker_id);
  // The registered, not dead worker, or NOT_FOUND telling it to register again.
  absl::StatusOr<Worker*> FindLive(const std::string& worker_id);
  // PERMISSION_DENIED when `worker_id` is registered and bound to a credential other than
  // `credential`; OK otherwise (an unknown worker is for the caller's other checks to refuse).
  absl::Status CheckCredential(const std::string& worker_id, const std::string& credential) const;

  // ---- Streams ----
  // Makes `channel` the worker's stream, closing an older one with ABORTED, and sees it now.
  void Attach(Worker& worker, std::shared_ptr<WorkerChannel> channel);
  // When `channel` is still the worker's stream, forgets it and returns the worker; else null.
  Worker* Detach(const std::string& worker_id, const WorkerChannel* channel);
  // Sends on the worker's stream; nothing when it is unknown or has none.
  void Send(const std::string& worker_id, const dino::v1::CoordinatorMessage& message);
  // Closes every stream with `status` and forgets them.
  void CloseAll(const absl::Status& status);

  // ---- Liveness ----
  void Touch(Worker& worker) { worker.last_seen = clock_->Now(); }
  // Forgets the dead workers last seen more than `retention` ago.
  void ForgetDead(absl::Duration retention);
  // The live workers last seen more than `timeout` ago, by id.
  std::vector<Worker*> Silent(absl::Duration timeout);

  // ---- Dropping an attempt ----
  // The worker must drop `attempt` of `job_id` before it is scheduled again. Unknown ids are
  // ignored.
  void MarkDropping(const std::string& worker_id, const std::string& job_id, int32_t attempt);
  // The worker says what it runs (`running`, null for nothing): when that is not the attempt it was
  // dropping, it is done dropping. True when this made it schedulable again.
  bool SawRunning(Worker& worker, const dino::v1::RunningAttempt* running);

  // ---- Records ----
  void Save(const Worker& worker);
  // A worker that is not dead becomes IDLE, without an attempt, and is saved.
  void SetIdle(Worker& worker);
  // Declares the worker DEAD (logging `why`): no attempt, its stream closed with NOT_FOUND telling
  // it to register again, saved.
  void SetDead(Worker& worker, const std::string& why);
  // Takes `info` as the record of its worker (the Store already has it, written in a job's
  // transaction). An unknown id is ignored.
  void Replace(dino::v1::WorkerInfo info);

  // ---- Views ----
  // The records, dead ones only with `include_dead`, in registration order, with last_heartbeat.
  std::vector<dino::v1::WorkerInfo> List(bool include_dead) const;
  // The workers in `state`, by id.
  std::vector<Worker*> InState(dino::v1::WorkerState state);
  Fleet FleetOf(dino::v1::DeviceKind kind) const;
  // The number of live workers of each device kind.
  RegisteredWorkers LiveByDevice() const;
  // IDLE workers with a stream that are not leaving, in registration order: those a gang may be
  // placed on.
  std::vector<IdleWorker> Schedulable() const;
  // All known workers, the dead ones included.
  size_t size() const { return workers_.size(); }
  // The number of workers in each state (only states that some worker is in).
  std::map<dino::v1::WorkerState, int> CountByState() const;

 private:
  Store* const store_;
  Clock* const clock_;
  std::map<std::string, Worker> workers_;
};

}  // namespace dino::server
