#include "worker/dino/multicrop.h"

namespace dino {

MultiCropWrapperImpl::MultiCropWrapperImpl(const TrainConfig& config, double drop_path_rate) {
  backbone = register_module("backbone", VisionTransformer(config.model, drop_path_rate));
  head = register_module("head", DINOHead(config.model.dim, config.head));
}

torch::Tensor MultiCropWrapperImpl::Features(const std::vector<torch::Tensor>& crops) {
  std::vector<torch::Tensor> outputs;
  size_t start = 0;
  while (start < crops.size()) {
    size_t end = start + 1;
    while (end < crops.size() && crops[end].size(-1) == crops[start].size(-1)) ++end;
    if (end - start == 1) {
      outputs.push_back(backbone->forward(crops[start]));
    } else {
      std::vector<torch::Tensor> group(crops.begin() + start, crops.begin() + end);
      outputs.push_back(backbone->forward(torch::cat(group, 0)));
    }
    start = end;
  }
  return outputs.size() == 1 ? outputs[0] : torch::cat(outputs, 0);
}

torch::Tensor MultiCropWrapperImpl::forward(const std::vector<torch::Tensor>& crops) {
  return head->forward(Features(crops));
}

double BackboneForwardFlops(const ModelConfig& m, int64_t size) {
  const double d = static_cast<double>(m.dim);
  const double grid = static_cast<double>(size / m.patch_size);
  const double patches = grid * grid;
  const double n = patches + 1;
  const double hidden = static_cast<double>(static_cast<int64_t>(d * m.mlp_ratio));
  const double patch_embed =
      2.0 * patches * static_cast<double>(m.in_channels * m.patch_size * m.patch_size) * d;
  const double per_block = 2.0 * n * d * 3 * d          // qkv
                           + 2.0 * n * n * d * 2        // QK^T and AV
                           + 2.0 * n * d * d            // proj
                           + 2.0 * n * d * hidden * 2;  // fc1, fc2
  return patch_embed + static_cast<double>(m.depth) * per_block;
}

double HeadForwardFlops(const ModelConfig& m, const HeadConfig& h) {
  const double d = static_cast<double>(m.dim), hid = static_cast<double>(h.hidden_dim),
               bot = static_cast<double>(h.bottleneck_dim), k = static_cast<double>(h.out_dim);
  double mlp = 0;
  if (h.nlayers <= 1) {
    mlp = 2.0 * d * bot;
  } else {
    mlp = 2.0 * d * hid + 2.0 * static_cast<double>(h.nlayers - 2) * hid * hid + 2.0 * hid * bot;
  }
  return mlp + 2.0 * bot * k;
}

}  // namespace dino
