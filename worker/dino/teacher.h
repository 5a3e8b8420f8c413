// The EMA teacher update θt ← m·θt + (1−m)·θs and the teacher-momentum schedule.
//
// The update runs as two foreach kernels over all parameter tensors (_foreach_mul_ and
// _foreach_add_), not a loop of small per-tensor kernels. Every student parameter, including a
// frozen weight_g, is averaged into its teacher twin, as in the reference.
//
// Ownership: TeacherEma holds aliases of the teacher's and student's parameter tensors; the
// Trainer that owns both modules owns it. Thread-safety: one thread at a time.
// Failure: Create returns INVALID_ARGUMENT when the two modules' parameter names or shapes differ;
// Update throws c10::Error only on device mismatches (callers use TorchCall).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "absl/status/statusor.h"

namespace dino {

class TeacherEma {
 public:
  static absl::StatusOr<TeacherEma> Create(const torch::nn::Module& teacher,
                                           const torch::nn::Module& student);
  // Copies the student's parameters and buffers into the teacher (initialisation).
  void CopyFromStudent();
  void Update(double momentum);

 private:
  std::vector<torch::Tensor> teacher_params_, student_params_;
  std::vector<torch::Tensor> teacher_buffers_, student_buffers_;
};

// Teacher momentum at iteration `it`: cosine from `base` (0.996) to 1 over `total_iters`.
double TeacherMomentum(double base, int64_t it, int64_t total_iters);

}  // namespace dino
