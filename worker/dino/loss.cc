#include "worker/dino/loss.h"

#include "common/status_macros.h"
#include "worker/dino/torch_status.h"

namespace dino {

DINOLoss::DINOLoss(int64_t out_dim, int64_t ncrops, double student_temp, double center_momentum,
                   torch::Device device)
    : ncrops_(ncrops),
      student_temp_(student_temp),
      center_momentum_(center_momentum),
      center_(torch::zeros({1, out_dim}, torch::TensorOptions().device(device))) {}

LossOutput DINOLoss::Compute(const torch::Tensor& student_out, const torch::Tensor& teacher_out,
                             double teacher_temp, bool with_statistics) const {
  TORCH_CHECK(student_out.size(0) % ncrops_ == 0, "student output rows (", student_out.size(0),
              ") are not a multiple of ncrops (", ncrops_, ")");
  TORCH_CHECK(teacher_out.size(0) * ncrops_ == student_out.size(0) * 2, "teacher output rows (",
              teacher_out.size(0), ") do not match 2 global crops of ",
              student_out.size(0) / ncrops_);
  const auto student = student_out.to(torch::kFloat) / student_temp_;
  const auto student_log = torch::log_softmax(student, -1).chunk(ncrops_);
  const auto teacher_logits = ((teacher_out.to(torch::kFloat) - center_) / teacher_temp).detach();
  const auto teacher_probs = torch::softmax(teacher_logits, -1);
  const auto teacher = teacher_probs.chunk(2);

  torch::Tensor total;
  int64_t terms = 0;
  for (int64_t iq = 0; iq < 2; ++iq) {
    for (int64_t v = 0; v < ncrops_; ++v) {
      if (v == iq) continue;
      auto term = torch::sum(-teacher[iq] * student_log[v], -1).mean();
      total = terms == 0 ? term : total + term;
      ++terms;
    }
  }
  LossOutput out;
  out.loss = total / static_cast<double>(terms);
  if (!with_statistics) return out;

  torch::NoGradGuard no_grad;
  const auto teacher_log = torch::log_softmax(teacher_logits, -1);
  const double entropy = (-(teacher_probs * teacher_log).sum(-1)).mean().item<double>();
  const auto mean_probs = teacher_probs.mean(0);
  const double batch_entropy =
      (-(mean_probs * torch::log(mean_probs.clamp_min(1e-30))).sum()).item<double>();
  out.teacher_entropy = entropy;
  out.batch_mean_entropy = batch_entropy;
  // Each teacher view is paired with ncrops−1 student views, so the pair-averaged teacher
  // entropy is the plain mean; KL = cross-entropy − entropy.
  out.kl_teacher_student = out.loss.detach().item<double>() - entropy;
  return out;
}

absl::Status DINOLoss::UpdateCenter(const torch::Tensor& teacher_out, Collectives* collectives) {
  torch::NoGradGuard no_grad;
  torch::Tensor batch_sum;
  DINO_RETURN_IF_ERROR(TorchCall("center: summing teacher outputs", [&] {
    batch_sum = teacher_out.detach().to(torch::kFloat).sum(0, /*keepdim=*/true);
  }));
  DINO_RETURN_IF_ERROR(collectives->AllReduceSum(batch_sum));
  const double rows = static_cast<double>(teacher_out.size(0) * collectives->world_size());
  return TorchCall("center: update", [&] {
    center_ = center_ * center_momentum_ + (batch_sum / rows) * (1.0 - center_momentum_);
  });
}

}  // namespace dino
