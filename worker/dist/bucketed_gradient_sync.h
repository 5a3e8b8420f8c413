// BucketedGradientSync: DDP-style gradient averaging over a ProcessGroupHandle, implementing the
// core's dino::GradientSync.
//
// Layout: Attach() walks the parameters in reverse (the order backward produces their grads when
// the list follows the forward order) and packs them into buckets of at most `bucket_cap_bytes`
// (a parameter larger than the cap gets a bucket of its own; a change of dtype or device starts a
// new bucket). The layout depends only on the parameter list, so it is identical on every rank.
// The list is not always in forward order (the Trainer's is grouped by weight decay), and then the
// first bucket would wait for the very end of backward. So, as DDP does, the end of the first step
// rebuilds the buckets in the order rank 0 actually received the gradients (parameters without a
// gradient last), broadcast from rank 0 so that every rank uses the same layout
// (GradientSyncOptions::rebuild_after_first_step). Each bucket is one flat buffer:
//   [grad of param 0 | grad of param 1 | ... | has_grad flags | produced_this_step flags]
// The flags ride along in the same all-reduce, so all ranks learn, for free, which parameters have
// a gradient on some rank.
//
// Overlap: a hook on each parameter (Tensor::register_hook, which fires once with the parameter's
// complete gradient just before it is accumulated into .grad) copies the gradient into its slot.
// When every parameter of a bucket that is expected to get a gradient has one, and every earlier
// bucket has been launched, the bucket's all-reduce starts asynchronously from inside backward.
// Buckets therefore always start in index order on every rank, whatever the timing.
//
// Parameters without a gradient (the frozen last layer in DINO's first epoch) never block the
// ranks: FinishStep launches the remaining buckets in order, with zeros and has_grad = 0 for
// missing gradients. The "expected" set is what some rank produced in the previous step (agreed by
// all ranks through the flags), so from the second step on a frozen layer no longer holds back
// its bucket. A gradient that arrives after its bucket left (a layer that starts training) is sent
// in one extra all-reduce; whether that extra all-reduce happens is decided by a small flag
// all-reduce that runs only while some parameter is not expected, so all ranks agree.
//
// FinishStep waits for every bucket, divides by the world size and writes each parameter's grad:
// the mean over ranks with missing grads counted as zero; a parameter with no grad on any rank
// keeps an undefined grad on every rank.
//
// Ownership: borrows the handle (must outlive this object). Destruction removes the hooks.
// Thread-safety: BeginStep/FinishStep from the training thread; hooks run on autograd threads;
// shared state is guarded by mu_. One backward per step (BeginStep -> backward -> FinishStep).
// Failure: ABORTED when the group fails (dead or hung peer, within the group timeout); the handle
// is then aborted and the caller abandons the attempt. Attach errors are INVALID_ARGUMENT.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "worker/dino/collectives.h"
#include "worker/dist/process_group.h"

namespace dino::dist {

struct GradientSyncOptions {
  int64_t bucket_cap_bytes = 25 * 1024 * 1024;
  // Re-lay the buckets after the first step in rank 0's gradient arrival order (one broadcast).
  bool rebuild_after_first_step = true;
};

// What one step did, for tests, logs and benchmarks.
struct StepTrace {
  struct Launch {
    int bucket = 0;
    absl::Time at;
    bool during_backward = false;  // launched from an autograd hook, not from FinishStep
  };
  std::vector<Launch> launches;  // in launch order (always bucket index order)
  absl::Time begin_step;
  absl::Time finish_step_called;    // backward has returned by then
  absl::Time reduced;               // every bucket has been reduced and written back
  bool late_gradient_pass = false;  // the extra all-reduce for gradients that missed their bucket
};

class BucketedGradientSync final : public dino::GradientSync {
 public:
  BucketedGradientSync(ProcessGroupHandle* group, GradientSyncOptions options = {},
                       Clock* clock = RealClock::Get());
  ~BucketedGradientSync() override;
  BucketedGradientSync(const BucketedGradientSync&) = delete;
  BucketedGradientSync& operator=(const BucketedGradientSync&) = delete;

  absl::Status Attach(const std::vector<torch::Tensor>& params) override;
  void BeginStep() override;
  absl::Status FinishStep() override;

  // Parameter indices (into the Attach list) of each bucket, in launch order.
  std::vector<std::vector<int>> bucket_layout() const;
  StepTrace last_trace() const;

 private:
  struct Slot {
    int bucket = 0;
    int64_t offset = 0;  // into the bucket's flat buffer
    int64_t numel = 0;
    int index_in_bucket = 0;
  };
  struct Bucket {
    std::vector<int> params;
    torch::Tensor flat;  // grads, then has_grad flags, then produced flags
    int64_t grad_numel = 0;
    int expected_pending = 0;  // expected params whose grad has not arrived this step
    bool launched = false;
    c10::intrusive_ptr<c10d::Work> work;
  };

  void OnGrad(int param, const torch::Tensor& grad);
  // Fills the slots of params that have not produced a grad and starts the all-reduce.
  void LaunchLocked(int bucket, bool during_backward) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LaunchReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  torch::Tensor GradView(int param) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReduceLateGradients() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteBack() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Packs the parameters, in `order`, into buckets and allocates their buffers.
  absl::Status LayOutBuckets(const std::vector<int>& order) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first step's rebuild: agree on rank 0's arrival order and lay the buckets out again.
  absl::Status RebuildInArrivalOrder() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ProcessGroupHandle* const group_;
  const GradientSyncOptions options_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  std::vector<torch::Tensor> params_ ABSL_GUARDED_BY(mu_);
  std::vector<unsigned> hook_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> expected_ ABSL_GUARDED_BY(mu_);  // agreed by all ranks
  bool all_expected_ ABSL_GUARDED_BY(mu_) = true;
  // Per step.
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  int next_launch_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<bool> produced_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> had_grad_at_launch_ ABSL_GUARDED_BY(mu_);
  std::vector<torch::Tensor> late_ ABSL_GUARDED_BY(mu_);  // grads that missed their bucket
  absl::Status hook_error_ ABSL_GUARDED_BY(mu_);
  bool rebuilt_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> arrival_order_ ABSL_GUARDED_BY(mu_);  // first gradients, until the rebuild
  StepTrace trace_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dino::dist
