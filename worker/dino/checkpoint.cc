#include "worker/dino/checkpoint.h"

#include <torch/torch.h>

#include <cstring>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "worker/dino/torch_status.h"
#include "worker/dino/trainer.h"

namespace dino {
namespace {

std::string ConfigText(const TrainConfig& config) {
  std::string text;
  for (const auto& [k, v] : config.ToKeyValues()) absl::StrAppend(&text, k, "=", v, "\n");
  return text;
}

absl::StatusOr<TrainConfig> ParseConfigText(const std::string& text, absl::string_view source) {
  std::map<std::string, std::string> kv;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat(source, ": malformed config line '", line, "'"));
    }
    kv[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  auto config = TrainConfig::FromKeyValues(kv);
  if (!config.ok()) return Annotate(config.status(), source);
  return config;
}

// Parses the archive inside a framed checkpoint.
absl::Status OpenArchive(absl::string_view bytes, absl::string_view source,
                         torch::serialize::InputArchive* archive) {
  DINO_ASSIGN_OR_RETURN(absl::string_view payload, UnframeCheckpoint(bytes, source));
  absl::Status s = TorchCall(absl::StrCat(source, ": reading the checkpoint archive"),
                             [&] { archive->load_from(payload.data(), payload.size()); });
  if (!s.ok()) return absl::DataLossError(s.message());
  return absl::OkStatus();
}

absl::StatusOr<TrainConfig> ReadConfig(torch::serialize::InputArchive& archive,
                                       absl::string_view source) {
  c10::IValue text;
  absl::Status s = TorchCall(absl::StrCat(source, ": reading the stored config"),
                             [&] { archive.read("config", text); });
  if (!s.ok() || !text.isString()) {
    return absl::DataLossError(absl::StrCat(source, ": the checkpoint has no config"));
  }
  return ParseConfigText(text.toStringRef(), source);
}

}  // namespace

absl::StatusOr<TrainConfig> ReadCheckpointConfig(absl::string_view bytes,
                                                 absl::string_view source) {
  torch::serialize::InputArchive archive;
  DINO_RETURN_IF_ERROR(OpenArchive(bytes, source, &archive));
  return ReadConfig(archive, source);
}

absl::Status CheckCompatible(const TrainConfig& stored, const TrainConfig& current,
                             absl::string_view source) {
  const auto a = stored.ToKeyValues(), b = current.ToKeyValues();
  for (const char* const* key = TrainConfig::ArchitectureKeys(); *key != nullptr; ++key) {
    const std::string& sv = a.at(*key);
    const std::string& cv = b.at(*key);
    if (sv != cv) {
      return absl::FailedPreconditionError(absl::StrCat(
          source, ": ", *key, " is ", sv, " in the checkpoint but ", cv, " in the config"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Trainer::CheckpointBytes(const CheckpointExtras& extras) const {
  torch::serialize::OutputArchive archive;
  DINO_RETURN_IF_ERROR(SaveState(archive));
  std::ostringstream stream;
  DINO_RETURN_IF_ERROR(TorchCall("serializing the checkpoint", [&] {
    archive.write("config", c10::IValue(ConfigText(config_)));
    archive.write("loader.epoch", torch::tensor(extras.loader_epoch, torch::kLong));
    archive.write("loader.step_in_epoch", torch::tensor(extras.loader_step_in_epoch, torch::kLong));
    auto state = torch::empty({static_cast<int64_t>(extras.loader_state.size())}, torch::kUInt8);
    std::memcpy(state.data_ptr(), extras.loader_state.data(), extras.loader_state.size());
    archive.write("loader.state", state);
    archive.save_to(stream);
  }));
  return FrameCheckpoint(stream.str());
}

absl::Status Trainer::SaveCheckpoint(FileSystem* fs, const std::string& path,
                                     const CheckpointExtras& extras) const {
  DINO_ASSIGN_OR_RETURN(std::string bytes, CheckpointBytes(extras));
  return Annotate(WriteFileAtomically(fs, path, bytes), "saving checkpoint");
}

absl::StatusOr<CheckpointExtras> Trainer::LoadCheckpointBytes(absl::string_view bytes,
                                                              absl::string_view source) {
  torch::serialize::InputArchive archive;
  DINO_RETURN_IF_ERROR(OpenArchive(bytes, source, &archive));
  DINO_ASSIGN_OR_RETURN(TrainConfig stored, ReadConfig(archive, source));
  DINO_RETURN_IF_ERROR(CheckCompatible(stored, config_, source));
  CheckpointExtras extras;
  absl::Status s = TorchCall(absl::StrCat(source, ": reading the loader position"), [&] {
    torch::Tensor epoch, step, state;
    archive.read("loader.epoch", epoch);
    archive.read("loader.step_in_epoch", step);
    archive.read("loader.state", state);
    extras.loader_epoch = epoch.item<int64_t>();
    extras.loader_step_in_epoch = step.item<int64_t>();
    state = state.contiguous();
    extras.loader_state.assign(static_cast<const char*>(state.data_ptr()),
                               static_cast<size_t>(state.numel()));
  });
  if (!s.ok()) return absl::DataLossError(s.message());
  s = LoadState(archive);
  if (!s.ok()) return absl::DataLossError(absl::StrCat(source, ": ", s.message()));
  return extras;
}

absl::StatusOr<CheckpointExtras> Trainer::LoadCheckpoint(FileSystem* fs, const std::string& path) {
  DINO_ASSIGN_OR_RETURN(std::string bytes, fs->ReadFile(path));
  return LoadCheckpointBytes(bytes, path);
}

}  // namespace dino
