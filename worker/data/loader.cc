#include "worker/data/loader.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "worker/data/augment_ops.h"
#include "worker/data/splitmix.h"
#include "worker/dino/torch_status.h"

namespace dino::data {
namespace {

uint64_t Mix(uint64_t a, uint64_t b) { return SplitMix64(a ^ SplitMix64(b)); }

int64_t ShardSize(int64_t n, const LoaderOptions& o) {
  return o.drop_last ? n / o.world_size : (n + o.world_size - 1) / o.world_size;
}

int64_t StepsPerEpoch(int64_t n, const LoaderOptions& o) {
  const int64_t shard = ShardSize(n, o);
  return o.drop_last ? shard / o.batch_size : (shard + o.batch_size - 1) / o.batch_size;
}

}  // namespace

std::vector<int64_t> ShardIndices(int64_t dataset_size, const LoaderOptions& options,
                                  int64_t epoch) {
  std::vector<int64_t> perm(dataset_size);
  for (int64_t i = 0; i < dataset_size; ++i) perm[i] = i;
  std::mt19937_64 rng(Mix(options.seed, static_cast<uint64_t>(epoch)));
  for (int64_t i = dataset_size - 1; i > 0; --i) {
    std::swap(perm[i], perm[static_cast<int64_t>(Uniform01(rng) * static_cast<double>(i + 1))]);
  }
  const int64_t shard = ShardSize(dataset_size, options);
  std::vector<int64_t> out;
  out.reserve(shard);
  for (int64_t k = 0; k < shard; ++k) {
    out.push_back(perm[(options.rank + k * options.world_size) % dataset_size]);
  }
  return out;
}

std::string EncodeLoaderState(const LoaderPosition& position, const LoaderOptions& options,
                              int64_t dataset_size) {
  return absl::StrCat("dinoloader1 ", position.epoch, " ", position.step, " ", options.seed, " ",
                      options.world_size, " ", options.rank, " ", options.batch_size, " ",
                      options.drop_last ? 1 : 0, " ", dataset_size);
}

absl::StatusOr<LoaderPosition> DecodeLoaderState(const std::string& bytes,
                                                 const LoaderOptions& options,
                                                 int64_t dataset_size) {
  std::vector<std::string> parts = absl::StrSplit(bytes, ' ');
  std::vector<uint64_t> v(parts.size(), 0);
  bool ok = parts.size() == 9 && parts[0] == "dinoloader1";
  for (size_t i = 1; ok && i < parts.size(); ++i) ok = absl::SimpleAtoi(parts[i], &v[i]);
  if (!ok) return absl::InvalidArgumentError("loader state: malformed bytes");
  const std::string want = EncodeLoaderState(
      {static_cast<int64_t>(v[1]), static_cast<int64_t>(v[2])}, options, dataset_size);
  if (want != bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("loader state '", bytes, "' was written for other options than '", want,
                     "' (seed, world size, rank, batch size, drop_last, dataset size)"));
  }
  return LoaderPosition{static_cast<int64_t>(v[1]), static_cast<int64_t>(v[2])};
}

absl::StatusOr<std::unique_ptr<Loader>> Loader::Create(std::shared_ptr<const Dataset> dataset,
                                                       LoaderOptions options,
                                                       AugmentOptions augment,
                                                       NormalizationStats stats) {
  if (dataset == nullptr) return absl::InvalidArgumentError("Loader: null dataset");
  if (options.batch_size <= 0 || options.world_size <= 0 || options.rank < 0 ||
      options.rank >= options.world_size || options.prefetch_depth < 1 || options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Loader: bad options (batch_size ", options.batch_size, ", rank ",
                     options.rank, ", world_size ", options.world_size, ", prefetch_depth ",
                     options.prefetch_depth, ", threads ", options.threads, ")"));
  }
  if (options.device.is_cuda() && !torch::cuda::is_available()) {
    return absl::InvalidArgumentError("Loader: CUDA device requested but CUDA is not available");
  }
  const int64_t steps = StepsPerEpoch(dataset->size(), options);
  if (steps <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Loader: ", dataset->name(), " has ", dataset->size(), " images: a shard of ",
                     ShardSize(dataset->size(), options), " per rank for ", options.world_size,
                     " ranks holds no full batch of ", options.batch_size));
  }
  DINO_ASSIGN_OR_RETURN(MultiCropAugmenter augmenter,
                        MultiCropAugmenter::Create(augment, stats, dataset->channels()));
  std::unique_ptr<Loader> loader(
      new Loader(std::move(dataset), std::move(options), std::move(augmenter), steps));
  loader->StartWorkers();
  return loader;
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options,
               MultiCropAugmenter augmenter, int64_t steps_per_epoch)
    : dataset_(std::move(dataset)),
      options_(std::move(options)),
      augmenter_(std::move(augmenter)),
      steps_per_epoch_(steps_per_epoch) {}

Loader::~Loader() { StopWorkers(); }

LoaderPosition Loader::PositionOf(int64_t global_step) const {
  return {global_step / steps_per_epoch_, global_step % steps_per_epoch_};
}

absl::StatusOr<MultiCropBatch> Loader::BuildBatch(LoaderPosition position) const {
  if (position.epoch < 0 || position.step < 0 || position.step >= steps_per_epoch_) {
    return absl::OutOfRangeError(absl::StrCat("Loader: position (epoch ", position.epoch, ", step ",
                                              position.step, ") out of range"));
  }
  std::shared_ptr<const std::vector<int64_t>> shard;
  {
    absl::MutexLock lock(&shard_mu_);
    if (shard_epoch_ != position.epoch || shard_ == nullptr) {
      shard_ = std::make_shared<const std::vector<int64_t>>(
          ShardIndices(dataset_->size(), options_, position.epoch));
      shard_epoch_ = position.epoch;
    }
    shard = shard_;
  }
  const int64_t begin = position.step * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, shard->size());
  std::vector<int64_t> indices(shard->begin() + begin, shard->begin() + end);
  DINO_ASSIGN_OR_RETURN(std::vector<torch::Tensor> images, dataset_->GetImages(indices));
  const uint64_t seed = Mix(Mix(Mix(options_.seed, static_cast<uint64_t>(position.epoch)),
                                static_cast<uint64_t>(options_.rank)),
                            static_cast<uint64_t>(position.step));
  const bool on_device = options_.device.is_cuda() && options_.augment_on_device;
  MultiCropBatch batch;
  DINO_ASSIGN_OR_RETURN(batch.crops,
                        augmenter_.Apply(images, seed, on_device ? options_.device : torch::kCPU));
  DINO_RETURN_IF_ERROR(TorchCall("loader batch", [&] {
    std::vector<int64_t> labels;
    for (int64_t i : indices) labels.push_back(dataset_->Label(i).value_or(-1));
    batch.indices = torch::tensor(indices, torch::kInt64);
    batch.labels = torch::tensor(labels, torch::kInt64);
    if (options_.device.is_cuda()) {
      for (auto& crop : batch.crops) {
        if (!crop.is_cuda()) crop = crop.pin_memory().to(options_.device, /*non_blocking=*/true);
      }
      batch.indices = batch.indices.to(options_.device);
      batch.labels = batch.labels.to(options_.device);
    }
  }));
  batch.position = position;
  return batch;
}

void Loader::StartWorkers() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
    next_to_claim_ = consumer_step_;
    consumed_ = consumer_step_;
    ready_.clear();
  }
  for (int t = 0; t < options_.threads; ++t) workers_.emplace_back([this] { WorkLoop(); });
}

void Loader::StopWorkers() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void Loader::WorkLoop() {
  while (true) {
    int64_t step;
    {
      absl::MutexLock lock(&mu_);
      auto can_claim = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || next_to_claim_ < consumed_ + options_.prefetch_depth;
      };
      mu_.Await(absl::Condition(&can_claim));
      if (stopping_) return;
      step = next_to_claim_++;
    }
    absl::StatusOr<MultiCropBatch> batch = BuildBatch(PositionOf(step));
    absl::MutexLock lock(&mu_);
    ready_.emplace(step, std::move(batch));
  }
}

absl::StatusOr<MultiCropBatch> Loader::Next() {
  const auto start = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  const int64_t want = consumer_step_;
  auto is_ready = [this, want]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ready_.count(want) > 0; };
  mu_.Await(absl::Condition(&is_ready));
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto it = ready_.find(want);
  if (!it->second.ok()) return it->second.status();  // stays failed until Seek
  absl::StatusOr<MultiCropBatch> batch = std::move(it->second);
  ready_.erase(it);
  ++consumer_step_;
  consumed_ = consumer_step_;
  position_ = PositionOf(consumer_step_);
  return batch;
}

absl::Status Loader::Seek(LoaderPosition position) {
  if (position.epoch < 0 || position.step < 0 || position.step >= steps_per_epoch_) {
    return absl::OutOfRangeError(
        absl::StrCat("Loader::Seek: position (epoch ", position.epoch, ", step ", position.step,
                     ") out of range: ", steps_per_epoch_, " steps per epoch"));
  }
  StopWorkers();
  position_ = position;
  consumer_step_ = position.epoch * steps_per_epoch_ + position.step;
  StartWorkers();
  return absl::OkStatus();
}

double Loader::data_wait_seconds() const {
  absl::MutexLock lock(&mu_);
  return wait_seconds_;
}

}  // namespace dino::data
