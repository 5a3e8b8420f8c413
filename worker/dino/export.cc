#include "worker/dino/export.h"

#include <torch/torch.h>

#include "common/status_macros.h"
#include "worker/dino/checkpoint.h"
#include "worker/dino/torch_status.h"

namespace dino {

absl::StatusOr<std::string> ExportBackboneBytes(const VisionTransformer& backbone) {
  return TorchCallOr("exporting the backbone", [&] {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const auto& p : backbone->named_parameters()) {
      dict.insert(p.key(), p.value().detach().to(torch::kCPU, torch::kFloat).contiguous().clone());
    }
    for (const auto& b : backbone->named_buffers()) {
      dict.insert(b.key(), b.value().detach().to(torch::kCPU).contiguous().clone());
    }
    const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
    return std::string(bytes.begin(), bytes.end());
  });
}

absl::Status ExportTeacherBackbone(const Trainer& trainer, FileSystem* fs,
                                   const std::string& path) {
  DINO_ASSIGN_OR_RETURN(std::string bytes, ExportBackboneBytes(trainer.teacher_backbone()));
  return Annotate(WriteFileAtomically(fs, path, bytes), "exporting the teacher backbone");
}

absl::StatusOr<std::string> ExportTeacherBackboneFromCheckpoint(absl::string_view checkpoint,
                                                                absl::string_view source) {
  DINO_ASSIGN_OR_RETURN(TrainConfig config, ReadCheckpointConfig(checkpoint, source));
  config.world_size = 1;
  config.device = "cpu";
  config.bf16 = false;
  LocalCollectives collectives;
  LocalGradientSync sync;
  DINO_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(config, &collectives, &sync));
  DINO_RETURN_IF_ERROR(trainer->LoadCheckpointBytes(checkpoint, source).status());
  return ExportBackboneBytes(trainer->teacher_backbone());
}

}  // namespace dino
