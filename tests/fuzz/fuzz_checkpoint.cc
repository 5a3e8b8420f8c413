// libFuzzer target: the checkpoint loader (worker/dino/checkpoint.h) on a tiny Trainer, on the
// real path a file takes: each input is loaded as is, so the frame (magic, version, length,
// SHA-256; checkpoint_frame.h) is verified before LibTorch's archive parser sees a byte.
// ReadCheckpointConfig and Trainer::LoadCheckpointBytes must return a Status, never crash or throw.
//
// Mutations of a valid checkpoint almost always stop at the SHA-256 check, which is the point: an
// earlier version framed every input itself to reach LibTorch 1.13's TorchScript unpickler, and
// found SEGVs inside it that no code of ours can catch. The only bytes that reach the unpickler are
// ones whose SHA-256 matches their header, i.e. files written whole by a Trainer (or forged by
// someone who can already write checkpoints).
//
// DINO_FUZZ_WRITE_SEED=<path> writes one valid, framed checkpoint to <path> at start-up: that is
// how tests/fuzz/corpus/checkpoint/tiny_checkpoint was made.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "worker/dino/checkpoint.h"
#include "worker/dino/collectives.h"
#include "worker/dino/trainer.h"

// LibTorch 1.13's archive reader leaks its miniz state (mz_zip_reader_init) when
// PyTorchStreamReader::init throws on a malformed zip. The fuzzer reaches it by writing the
// SHA-256 it saw compared into a mutated frame (regressions/checkpoint/leak-mz-zip-reader-init).
// Debian's LibTorch has no frame pointers, so the fast unwinder's stack for that allocation ends
// in libtorch_cpu.so: leaks allocated inside LibTorch are suppressed, and every leak of memory
// that dinotrain's code allocates is still reported.
extern "C" const char* __lsan_default_suppressions() { return "leak:libtorch_cpu.so\n"; }

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
  c.head.hidden_dim = 16;
  c.head.bottleneck_dim = 8;
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
    std::ofstream(seed, std::ios::binary) << *bytes;
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  (void)dino::ReadCheckpointConfig(input, "fuzz");
  (void)trainer->LoadCheckpointBytes(input, "fuzz");
  return 0;
}
