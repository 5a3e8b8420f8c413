// Loader: one rank's stream of ready multi-crop batches, sharded like torch's DistributedSampler
// and prefetched in the background.
//
// Order: epoch e is a permutation of [0, N) drawn from (seed, e). With drop_last it is cut to
// floor(N / world_size) * world_size indices, otherwise padded by wrapping around to a multiple of
// world_size; rank r takes positions r, r + world_size, ... (disjoint shards covering the epoch).
// The shard is cut into batches of batch_size; with drop_last a short last batch is dropped.
// The views of step s of epoch e on rank r are augmented with a seed derived from
// (seed, e, r, s): any (seed, epoch, rank, step) always yields the same batch, which is what makes
// a mid-epoch resume (Seek) exact. Epochs follow one another without end; Next() never runs dry.
//
// Prefetch: `threads` background threads build up to `prefetch_depth` batches ahead of the
// consumer (decode through Dataset::GetImages, then MultiCropAugmenter::Apply). With a CUDA
// device the crops are returned on it (augmented there when augment_on_device, else copied from
// pinned memory without blocking).
//
// Ownership: the Loader owns its threads and shares the dataset. Thread-safety: Next, Seek and
// position are for one consumer thread; data_wait_seconds may be read from any thread.
// Failure: Create returns INVALID_ARGUMENT for bad options (e.g. a shard smaller than one batch
// with drop_last). Next returns the first error a background thread met (a dataset error such
// as FAILED_PRECONDITION for too many corrupt files, or a LibTorch error); the loader then stays
// failed until Seek.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"

namespace dino::data {

struct LoaderOptions {
  int64_t batch_size = 64;  // per rank
  int64_t rank = 0;
  int64_t world_size = 1;
  uint64_t seed = 0;
  bool drop_last = true;
  int64_t prefetch_depth = 4;  // batches ready ahead of the consumer (>= 1)
  int threads = 2;             // background threads building batches (>= 1)
  torch::Device device = torch::kCPU;
  bool augment_on_device = true;  // CUDA only: augment on the GPU, decode on the CPU
};

// Where the loader stands: the next batch Next() returns is step `step` of epoch `epoch`.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t step = 0;
  bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && step == o.step; }
};

// Checkpoint bytes for a position together with the options that define the order (seed,
// world size, rank, batch size, dataset size), so a resume with a different order is refused.
std::string EncodeLoaderState(const LoaderPosition& position, const LoaderOptions& options,
                              int64_t dataset_size);
// INVALID_ARGUMENT for malformed bytes; FAILED_PRECONDITION if they were written for other
// options or another dataset size.
absl::StatusOr<LoaderPosition> DecodeLoaderState(const std::string& bytes,
                                                 const LoaderOptions& options,
                                                 int64_t dataset_size);

struct MultiCropBatch {
  std::vector<torch::Tensor> crops;  // float [B, C, H, W], normalised; [0..1] global, then locals
  torch::Tensor indices;             // int64 [B]: dataset indices
  torch::Tensor labels;              // int64 [B]: labels, -1 where the dataset has none
  LoaderPosition position;           // the position this batch was taken from
};

// The indices of rank `rank`'s shard in `epoch` (before batching); exposed for tests and tools.
std::vector<int64_t> ShardIndices(int64_t dataset_size, const LoaderOptions& options,
                                  int64_t epoch);

class Loader {
 public:
  static absl::StatusOr<std::unique_ptr<Loader>> Create(std::shared_ptr<const Dataset> dataset,
                                                        LoaderOptions options,
                                                        AugmentOptions augment,
                                                        NormalizationStats stats);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The batch at position(), then advances by one step (into the next epoch after the last).
  absl::StatusOr<MultiCropBatch> Next();
  // Drops the prefetched batches and continues from `position` (step < steps_per_epoch()).
  absl::Status Seek(LoaderPosition position);
  LoaderPosition position() const { return position_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // Total seconds Next() has spent blocked waiting for a batch.
  double data_wait_seconds() const;

  // The batch of one step built synchronously in the calling thread (no prefetch); Next() returns
  // exactly this. For tests and tools.
  absl::StatusOr<MultiCropBatch> BuildBatch(LoaderPosition position) const;

 private:
  Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options,
         MultiCropAugmenter augmenter, int64_t steps_per_epoch);
  void StartWorkers();
  void StopWorkers();
  void WorkLoop();
  LoaderPosition PositionOf(int64_t global_step) const;

  const std::shared_ptr<const Dataset> dataset_;
  const LoaderOptions options_;
  const MultiCropAugmenter augmenter_;
  const int64_t steps_per_epoch_;
  LoaderPosition position_;    // consumer thread only
  int64_t consumer_step_ = 0;  // global step of position_; consumer thread only

  // The shard of the epoch last used by BuildBatch, shared by the threads.
  mutable absl::Mutex shard_mu_;
  mutable std::shared_ptr<const std::vector<int64_t>> shard_ ABSL_GUARDED_BY(shard_mu_);
  mutable int64_t shard_epoch_ ABSL_GUARDED_BY(shard_mu_) = -1;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_to_claim_ ABSL_GUARDED_BY(mu_) = 0;  // global step
  int64_t consumed_ ABSL_GUARDED_BY(mu_) = 0;       // global step the consumer waits for
  std::map<int64_t, absl::StatusOr<MultiCropBatch>> ready_ ABSL_GUARDED_BY(mu_);
  double wait_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> workers_;
};

}  // namespace dino::data
