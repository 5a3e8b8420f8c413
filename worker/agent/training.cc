#include "worker/agent/training.h"

#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/agent/attempt_runner.h"
#include "worker/dino/collectives.h"
#include "worker/dino/failure_kind.h"
#include "worker/dist/bucketed_gradient_sync.h"
#include "worker/dist/c10d_collectives.h"
#include "worker/dist/process_group.h"

namespace dino::agent {
namespace {

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad rendezvous address '", address, "': expected host:port"));
  }
  return std::make_pair(address.substr(0, colon), port);
}

absl::StatusOr<std::unique_ptr<dist::ProcessGroupHandle>> JoinGroup(const TrainRequest& request) {
  const dino::v1::Assignment& a = *request.assignment;
  dist::Rendezvous rv;
  rv.job_id = a.job_id();
  rv.attempt = a.attempt();
  rv.rank = a.rank();
  rv.world_size = a.world_size();
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(a.master_address());
  if (!hp.ok()) return hp.status();
  rv.master_host = hp->first;
  rv.master_port = hp->second;
  dist::DistOptions dopts;
  dopts.device = torch::Device(request.options->device);
  dopts.timeout = request.options->collective_timeout;
  dopts.rendezvous_timeout = request.options->rendezvous_timeout;
  dopts.gloo_bind_host = request.options->bind_host;
  return dist::CreateProcessGroup(rv, dopts);
}

}  // namespace

absl::StatusOr<run::RunResult> RealTraining(TrainRequest request) {
  // The process group lives as long as the run; one rank needs none.
  std::unique_ptr<dist::ProcessGroupHandle> group;
  std::unique_ptr<Collectives> collectives;
  std::unique_ptr<GradientSync> sync;
  if (request.assignment->world_size() > 1) {
    absl::StatusOr<std::unique_ptr<dist::ProcessGroupHandle>> created = JoinGroup(request);
    if (!created.ok()) {
      return WithFailureKind(absl::AbortedError(created.status().message()), FailureKind::kTrain);
    }
    group = std::move(*created);
    collectives = std::make_unique<dist::C10dCollectives>(group.get());
    sync = std::make_unique<dist::BucketedGradientSync>(group.get());
  } else {
    collectives = std::make_unique<LocalCollectives>();
    sync = std::make_unique<LocalGradientSync>();
  }
  absl::StatusOr<run::RunResult> result;
  {
    // Abort breaks a collective in flight; registered while the group may block.
    CancelToken::Registration abort(request.abort, [g = group.get()] {
      if (g != nullptr) g->Abort(absl::AbortedError("attempt aborted"));
    });
    absl::StatusOr<std::unique_ptr<run::TrainingRun>> training =
        run::TrainingRun::Create(request.run_options, collectives.get(), sync.get(), request.fs);
    if (!training.ok()) {
      result = training.status();
    } else {
      if (request.on_start) request.on_start((*training)->trainer().step());
      result = (*training)->Run(request.callbacks);
      if (request.before_teardown) request.before_teardown();
      training->reset();
    }
  }
  sync.reset();
  collectives.reset();
  group.reset();  // Tears down the backend and the store before the runner reports.
  return result;
}

}  // namespace dino::agent
