// DINOLoss: cross-entropy between centred, sharpened teacher outputs and student outputs over all
// 2·(ncrops−1) (teacher global view i, student view v ≠ i) pairs, plus the center EMA and the
// collapse statistics (docs/dino.md, "Loss" and "Monitoring"). The pair sum is regrouped as
// (t_0 + t_1)·Σ_v log s_v − Σ_{i<2} t_i·log s_i: the reference's value in 3 passes over [B, K]
// instead of 2·(ncrops−1) (tests/worker/dino/parity_test.cc checks it against the reference loop).
//
// The center update sums the raw teacher outputs, all-reduces the sum through the injected
// Collectives (identity on one rank), divides by the global row count and applies
// C ← m·C + (1−m)·mean. The loss and the statistics are computed on this rank's batch.
//
// Ownership: owned by the Trainer; holds the center tensor [1, K] on the training device.
// Thread-safety: one thread at a time.
// Failure: Compute throws c10::Error on bad shapes (callers use TorchCall); UpdateCenter returns
// the Collectives' Status (ABORTED for a torn-down collective) and leaves the center unchanged.
#pragma once

#include <torch/torch.h>

#include "absl/status/status.h"
#include "worker/dino/collectives.h"

namespace dino {

struct LossOutput {
  torch::Tensor loss;             // scalar, differentiable w.r.t. the student output.
  double teacher_entropy = 0;     // mean per-sample entropy of the teacher distribution.
  double batch_mean_entropy = 0;  // entropy of the batch-mean teacher distribution.
  double kl_teacher_student = 0;  // mean over pairs of KL(teacher ‖ student).
  // The batch-mean teacher distribution [K] behind batch_mean_entropy, so that the statistics of
  // a batch computed in parts (micro-batches) can be combined exactly.
  torch::Tensor teacher_mean_probs;
};

class DINOLoss {
 public:
  DINOLoss(int64_t out_dim, int64_t ncrops, double student_temp, double center_momentum,
           torch::Device device);

  // student_out: [ncrops * B, K]; teacher_out: [2 * B, K] (rows ordered crop by crop).
  // Uses the current center; does not change it. Computed in float32.
  LossOutput Compute(const torch::Tensor& student_out, const torch::Tensor& teacher_out,
                     double teacher_temp, bool with_statistics = true) const;

  // C ← m·C + (1−m)·(all-reduced sum of teacher_out rows) / (rows · world_size).
  absl::Status UpdateCenter(const torch::Tensor& teacher_out, Collectives* collectives);

  // Entropy −Σ p·log p of a distribution [K] (0·log 0 taken as 0).
  static double Entropy(const torch::Tensor& probs);

  const torch::Tensor& center() const { return center_; }
  void set_center(torch::Tensor c) { center_ = std::move(c); }
  int64_t ncrops() const { return ncrops_; }

 private:
  int64_t ncrops_;
  double student_temp_;
  double center_momentum_;
  torch::Tensor center_;
};

}  // namespace dino
