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
  TORCH_CHECK(ncrops_ >= 2, "DINOLoss needs at least the 2 global crops, got ncrops ", ncrops_);
  const int64_t k = student_out.size(1);
  const int64_t b = student_out.size(0) / ncrops_;
  const auto student_log =
      torch::log_softmax(student_out.to(torch::kFloat) / student_temp_, -1).view({ncrops_, b, k});
  const auto teacher_logits = ((teacher_out.to(torch::kFloat) - center_) / teacher_temp).detach();
  const auto teacher_probs = torch::softmax(teacher_logits, -1);
  const auto teacher = teacher_probs.view({2, b, k});

  // Σ_{iq<2} Σ_{v≠iq} t_iq·log s_v = (t_0 + t_1)·Σ_v log s_v − t_0·log s_0 − t_1·log s_1, per
  // sample. The same value as the reference's loop over 2·(ncrops−1) pairs, in 3 passes over
  // [B, K] instead of one multiply-and-sum per pair, forward and backward: with K = 65536 these
  // memory-bound passes, not the matmuls, dominate a CPU step.
  const int64_t terms = 2 * (ncrops_ - 1);
  const auto all_pairs = (teacher.sum(0) * student_log.sum(0)).sum(-1);
  const auto same_view = (teacher * student_log.slice(0, 0, 2)).sum(-1).sum(0);
  LossOutput out;
  out.loss = -(all_pairs - same_view).mean() / static_cast<double>(terms);
  if (!with_statistics) return out;

  torch::NoGradGuard no_grad;
  const auto teacher_log = torch::log_softmax(teacher_logits, -1);
  const double entropy = (-(teacher_probs * teacher_log).sum(-1)).mean().item<double>();
  out.teacher_mean_probs = teacher_probs.mean(0);
  out.teacher_entropy = entropy;
  out.batch_mean_entropy = Entropy(out.teacher_mean_probs);
  // Each teacher view is paired with ncrops−1 student views, so the pair-averaged teacher
  // entropy is the plain mean; KL = cross-entropy − entropy.
  out.kl_teacher_student = out.loss.detach().item<double>() - entropy;
  return out;
}

double DINOLoss::Entropy(const torch::Tensor& probs) {
  torch::NoGradGuard no_grad;
  return (-(probs * torch::log(probs.clamp_min(1e-30))).sum()).item<double>();
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
