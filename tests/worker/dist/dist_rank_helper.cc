// dist_rank_helper: one DINO rank as its own process, for the worker/dist process tests.
//
//   dist_rank_helper <port> <rank> <world> <job> <attempt> <steps> <timeout_ms>
//
// Joins the Gloo group at 127.0.0.1:<port>, builds the tiny Trainer (dino_dist_test_util.h), and
// trains <steps> steps on its slice of each global batch (steps < 0: until it fails or is killed),
// printing "step N" after each. It then checks with a checksum all-reduce that every rank holds
// the same student, teacher and center, and exits 0. Any error: the status on stderr, exit 3.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "tests/worker/dist/dino_dist_test_util.h"
#include "worker/dist/bucketed_gradient_sync.h"
#include "worker/dist/c10d_collectives.h"
#include "worker/dist/process_group.h"

namespace {

absl::Status Run(const dino::dist::Rendezvous& rendezvous, int64_t steps, absl::Duration timeout) {
  using namespace dino::dist;  // NOLINT: a test helper's main file
  DistOptions options;
  options.timeout = timeout;
  options.rendezvous_timeout = absl::Seconds(30);
  options.gloo_bind_host = "127.0.0.1";
  auto group = CreateProcessGroup(rendezvous, options);
  if (!group.ok()) return group.status();
  C10dCollectives collectives(group->get());
  BucketedGradientSync sync(group->get(), GradientSyncOptions{4096});
  const dino::TrainConfig config =
      testing::TinyDinoConfig(testing::kRankBatch, rendezvous.world_size);
  auto trainer = dino::Trainer::Create(config, &collectives, &sync);
  if (!trainer.ok()) return trainer.status();
  for (int64_t step = 0; steps < 0 || step < steps; ++step) {
    auto crops = testing::RankSlice(
        testing::MakeGlobalCrops(config, testing::kRankBatch * rendezvous.world_size, step),
        rendezvous.rank, testing::kRankBatch);
    auto r = (*trainer)->Step(crops);
    if (!r.ok()) return r.status();
    std::printf("step %ld\n", static_cast<long>(step));
    std::fflush(stdout);
  }
  return VerifySameParameters(&collectives, testing::AgreementTensors(**trainer));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s port rank world job attempt steps timeout_ms\n", argv[0]);
    return 2;
  }
  dino::dist::Rendezvous r;
  int64_t steps = 0, timeout_ms = 0;
  if (!absl::SimpleAtoi(argv[1], &r.master_port) || !absl::SimpleAtoi(argv[2], &r.rank) ||
      !absl::SimpleAtoi(argv[3], &r.world_size) || !absl::SimpleAtoi(argv[5], &r.attempt) ||
      !absl::SimpleAtoi(argv[6], &steps) || !absl::SimpleAtoi(argv[7], &timeout_ms)) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  r.job_id = argv[4];
  r.master_host = "127.0.0.1";
  absl::Status s = Run(r, steps, absl::Milliseconds(timeout_ms));
  if (!s.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", r.rank, s.ToString().c_str());
    return 3;
  }
  return 0;
}
