// Trainer's checkpoint state: SaveState/LoadState (declared in trainer.h) write and read the
// student, teacher, optimizer moments, center, step and RNG states. Modules are stored tensor by
// tensor with their names, and loading copies into the existing tensors.
#include <ATen/CPUGeneratorImpl.h>

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/dino/torch_status.h"
#include "worker/dino/trainer.h"

namespace dino {
namespace {

torch::Tensor TrainerGeneratorState(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void SetTrainerGeneratorState(at::Generator& gen, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// A module's parameters and buffers as t0..tN plus their names, so loading copies values into
// the existing tensors (torch's Module::load swaps storages, which would orphan the aliases held
// by the EMA and GradientSync).
void SaveModule(const torch::nn::Module& module, torch::serialize::OutputArchive& archive) {
  std::string names;
  int64_t i = 0;
  auto write = [&](const std::string& name, const torch::Tensor& t) {
    archive.write(absl::StrCat("t", i++), t.detach().to(torch::kCPU));
    absl::StrAppend(&names, name, "\n");
  };
  for (const auto& p : module.named_parameters()) write(p.key(), p.value());
  for (const auto& b : module.named_buffers()) write(b.key(), b.value());
  archive.write("names", c10::IValue(names));
}

void LoadModule(torch::nn::Module& module, torch::serialize::InputArchive& archive,
                const std::string& what) {
  c10::IValue names_value;
  archive.read("names", names_value);
  std::string expected;
  std::vector<torch::Tensor> targets;
  for (const auto& p : module.named_parameters()) {
    absl::StrAppend(&expected, p.key(), "\n");
    targets.push_back(p.value());
  }
  for (const auto& b : module.named_buffers()) {
    absl::StrAppend(&expected, b.key(), "\n");
    targets.push_back(b.value());
  }
  TORCH_CHECK(names_value.isString() && names_value.toStringRef() == expected, what,
              ": the stored parameter names differ from this model's");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < targets.size(); ++i) {
    torch::Tensor t;
    archive.read(absl::StrCat("t", i), t);
    TORCH_CHECK(t.sizes().equals(targets[i].sizes()), what, ": tensor ", i, " has shape ",
                t.sizes(), ", expected ", targets[i].sizes());
    targets[i].copy_(t);
  }
}

}  // namespace

absl::Status Trainer::SaveState(torch::serialize::OutputArchive& archive) const {
  return TorchCall("saving trainer state", [&] {
    torch::serialize::OutputArchive student, teacher, optimizer;
    SaveModule(*student_, student);
    SaveModule(*teacher_, teacher);
    optimizer_->Save(optimizer);
    archive.write("student", student);
    archive.write("teacher", teacher);
    archive.write("optimizer", optimizer);
    archive.write("center", loss_->center().to(torch::kCPU));
    archive.write("step", torch::tensor(step_, torch::kLong));
    auto default_gen = at::detail::getDefaultCPUGenerator();
    archive.write("rng.default_cpu", TrainerGeneratorState(default_gen));
    auto drop_path = drop_path_generator_;
    archive.write("rng.drop_path", TrainerGeneratorState(drop_path));
  });
}

absl::Status Trainer::LoadState(torch::serialize::InputArchive& archive) {
  return TorchCall("loading trainer state", [&] {
    torch::serialize::InputArchive student, teacher, optimizer;
    archive.read("student", student);
    archive.read("teacher", teacher);
    archive.read("optimizer", optimizer);
    LoadModule(*student_, student, "student");
    LoadModule(*teacher_, teacher, "teacher");
    optimizer_->Load(optimizer);
    torch::Tensor center, step, rng_default, rng_drop_path;
    archive.read("center", center);
    archive.read("step", step);
    archive.read("rng.default_cpu", rng_default);
    archive.read("rng.drop_path", rng_drop_path);
    TORCH_CHECK(center.sizes().equals(loss_->center().sizes()), "center has shape ", center.sizes(),
                ", expected ", loss_->center().sizes());
    loss_->set_center(center.to(device_));
    step_ = step.item<int64_t>();
    auto default_gen = at::detail::getDefaultCPUGenerator();
    SetTrainerGeneratorState(default_gen, rng_default);
    SetTrainerGeneratorState(drop_path_generator_, rng_drop_path);
  });
}

}  // namespace dino
