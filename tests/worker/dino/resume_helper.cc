// dino_resume_helper CHECKPOINT NSTEPS OUT: a fresh process that rebuilds the Trainer from the
// config stored in CHECKPOINT, loads it, runs NSTEPS more steps on testing::MakeCrops and writes
// the result as checkpoint OUT (loader extras passed through). Used by the resume-exactness test.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/file_system.h"
#include "tests/worker/dino/test_util.h"
#include "worker/dino/checkpoint.h"
#include "worker/dino/collectives.h"
#include "worker/dino/trainer.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "dino_resume_helper: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return Fail("usage: dino_resume_helper CHECKPOINT NSTEPS OUT");
  dino::FileSystem* fs = dino::DefaultFileSystem();
  auto bytes = fs->ReadFile(argv[1]);
  if (!bytes.ok()) return Fail(bytes.status().ToString());
  auto config = dino::ReadCheckpointConfig(*bytes, argv[1]);
  if (!config.ok()) return Fail(config.status().ToString());
  dino::LocalCollectives collectives;
  dino::LocalGradientSync sync;
  auto trainer = dino::Trainer::Create(*config, &collectives, &sync);
  if (!trainer.ok()) return Fail(trainer.status().ToString());
  auto extras = (*trainer)->LoadCheckpointBytes(*bytes, argv[1]);
  if (!extras.ok()) return Fail(extras.status().ToString());
  const int64_t n = std::atoll(argv[2]);
  for (int64_t i = 0; i < n; ++i) {
    auto r = (*trainer)->Step(dino::testing::MakeCrops(*config, (*trainer)->step()));
    if (!r.ok()) return Fail(r.status().ToString());
    std::printf("step %lld loss %.9g\n", static_cast<long long>(r->step), r->loss);
  }
  auto saved = (*trainer)->SaveCheckpoint(fs, argv[3], *extras);
  if (!saved.ok()) return Fail(saved.ToString());
  return 0;
}
