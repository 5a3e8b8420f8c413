#include "worker/dino/teacher.h"

#include "absl/strings/str_cat.h"
#include "worker/dino/schedules.h"

namespace dino {

absl::StatusOr<TeacherEma> TeacherEma::Create(const torch::nn::Module& teacher,
                                              const torch::nn::Module& student) {
  TeacherEma ema;
  const auto tp = teacher.named_parameters(), sp = student.named_parameters();
  if (tp.size() != sp.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("teacher has ", tp.size(), " parameters, student ", sp.size()));
  }
  for (size_t i = 0; i < tp.size(); ++i) {
    const auto& t = tp[i];
    const auto& s = sp[i];
    if (t.key() != s.key() || !t.value().sizes().equals(s.value().sizes())) {
      return absl::InvalidArgumentError(
          absl::StrCat("teacher parameter ", t.key(), " does not match student ", s.key()));
    }
    ema.teacher_params_.push_back(t.value().detach());
    ema.student_params_.push_back(s.value().detach());
  }
  const auto tb = teacher.named_buffers(), sb = student.named_buffers();
  if (tb.size() != sb.size()) {
    return absl::InvalidArgumentError("teacher and student buffers differ");
  }
  for (size_t i = 0; i < tb.size(); ++i) {
    ema.teacher_buffers_.push_back(tb[i].value().detach());
    ema.student_buffers_.push_back(sb[i].value().detach());
  }
  return ema;
}

void TeacherEma::CopyFromStudent() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < teacher_params_.size(); ++i) teacher_params_[i].copy_(student_params_[i]);
  for (size_t i = 0; i < teacher_buffers_.size(); ++i) {
    teacher_buffers_[i].copy_(student_buffers_[i]);
  }
}

void TeacherEma::Update(double momentum) {
  torch::NoGradGuard no_grad;
  at::_foreach_mul_(teacher_params_, momentum);
  at::_foreach_add_(teacher_params_, student_params_, 1.0 - momentum);
}

double TeacherMomentum(double base, int64_t it, int64_t total_iters) {
  return CosineSchedule(base, 1.0, it, total_iters);
}

}  // namespace dino
