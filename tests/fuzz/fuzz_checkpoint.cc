// libFuzzer target: the checkpoint loader (worker/dino/checkpoint.h) on a tiny Trainer.
//
// An input that starts with the "DINOCKP1" magic is loaded as is (exercising the framing checks);
// any other input is framed first, so that the FNV-1a checksum does not stop the fuzzer before
// LibTorch's archive parser and the state restore are reached. Both ReadCheckpointConfig and
// Trainer::LoadCheckpointBytes must return a Status, never crash or throw.
//
// DINO_FUZZ_WRITE_SEED=<path> writes one valid checkpoint payload (unframed) to <path> at start-up:
// that is how tests/fuzz/corpus/checkpoint/ was made.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "worker/dino/checkpoint.h"
#include "worker/dino/collectives.h"
#include "worker/dino/trainer.h"

namespace {

dino::TrainConfig TinyConfig() {
  dino::TrainConfig c;
  c.model.preset = "custom";
  c.model.dim = 16;
  c.model.depth = 1;
  c.model.heads = 2;
  c.model.patch_size = 4;
  c.model.image_size = 8;
  c.model.in_channels = 1;
  c.model.drop_path_rate = 0.0;
  c.head.out_dim = 16;
  c.head.hidden = 16;
  c.head.bottleneck = 8;
  c.head.nlayers = 2;
  c.crops.global_crop_size = 8;
  c.crops.local_crop_size = 4;
  c.crops.n_local_crops = 0;
  c.optim.batch_size_per_rank = 2;
  c.optim.epochs = 1;
  c.optim.warmup_epochs = 0;
  c.steps_per_epoch = 1;
  c.threads = 1;
  return c;
}

dino::LocalCollectives collectives;
dino::LocalGradientSync gradient_sync;
std::unique_ptr<dino::Trainer> trainer;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  auto created = dino::Trainer::Create(TinyConfig(), &collectives, &gradient_sync);
  if (!created.ok()) std::abort();
  trainer = std::move(*created);
  if (const char* seed = std::getenv("DINO_FUZZ_WRITE_SEED"); seed != nullptr) {
    dino::CheckpointExtras extras;
    extras.loader_state = "seed";
    auto bytes = trainer->CheckpointBytes(extras);
    if (!bytes.ok()) std::abort();
    auto payload = dino::UnframeCheckpoint(*bytes, "seed");
    if (!payload.ok()) std::abort();
    std::ofstream(seed, std::ios::binary) << std::string(*payload);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string bytes = absl::StartsWith(input, "DINOCKP1") ? std::string(input)
                                                                 : dino::FrameCheckpoint(input);
  (void)dino::ReadCheckpointConfig(bytes, "fuzz");
  (void)trainer->LoadCheckpointBytes(bytes, "fuzz");
  return 0;
}
