// JobSpec → RunOptions conversion and the failure classification the coordinator's retry policy
// relies on.
#include "worker/agent/spec_convert.h"

#include <gtest/gtest.h>

#include "absl/strings/cord.h"
#include "worker/agent/attempt_runner.h"
#include "worker/dino/failure_kind.h"

namespace dino::agent {
namespace {

dino::v1::JobSpec FashionSpec() {
  dino::v1::JobSpec spec;
  spec.mutable_model()->set_preset("custom");
  spec.mutable_model()->set_dim(64);
  spec.mutable_model()->set_depth(2);
  spec.mutable_model()->set_heads(2);
  spec.mutable_model()->set_patch_size(4);
  spec.mutable_head()->set_out_dim(1024);
  spec.mutable_head()->set_hidden_dim(128);
  spec.mutable_head()->set_bottleneck_dim(32);
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_IDX);
  spec.mutable_data()->set_path("/d/train-images-idx3-ubyte.gz");
  spec.mutable_data()->set_labels_path("/d/train-labels-idx1-ubyte.gz");
  spec.mutable_data()->set_eval_path("/d/t10k-images-idx3-ubyte.gz");
  spec.mutable_data()->set_eval_labels_path("/d/t10k-labels-idx1-ubyte.gz");
  spec.mutable_augmentation()->set_global_crop_size(28);
  spec.mutable_augmentation()->set_local_crop_size(12);
  spec.mutable_augmentation()->set_n_local_crops(4);
  spec.mutable_augmentation()->set_solarization_prob(0.3);
  spec.mutable_optim()->set_epochs(7);
  spec.mutable_optim()->set_batch_size_per_rank(48);
  spec.mutable_dino()->set_momentum_teacher(0.99);
  spec.mutable_checkpoint()->set_every_steps(25);
  spec.mutable_eval()->set_every_epochs(2);
  spec.set_seed(42);
  return spec;
}

TEST(SpecConvertTest, CopiesSetFieldsAndKeepsDefaultsForTheRest) {
  LocalResources local;
  local.device = "cpu";
  local.threads = 3;
  local.work_dir = "/w";
  absl::StatusOr<run::RunOptions> o = RunOptionsFromSpec(FashionSpec(), local);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->train.model.dim, 64);
  EXPECT_EQ(o->train.model.patch_size, 4);
  EXPECT_EQ(o->train.head.out_dim, 1024);
  EXPECT_EQ(o->train.head.hidden_dim, 128);
  EXPECT_EQ(o->train.head.bottleneck_dim, 32);
  EXPECT_TRUE(o->train.head.norm_last_layer);  // Default.
  EXPECT_EQ(o->train.optim.epochs, 7);
  EXPECT_EQ(o->train.optim.batch_size_per_rank, 48);
  EXPECT_DOUBLE_EQ(o->train.optim.lr, 0.0005);  // Default.
  EXPECT_DOUBLE_EQ(o->train.dino.momentum_teacher, 0.99);
  EXPECT_EQ(o->train.crops.global_crop_size, 28);
  EXPECT_EQ(o->train.crops.n_local_crops, 4);
  EXPECT_EQ(o->augment.n_local_crops, 4);
  EXPECT_DOUBLE_EQ(o->augment.global2.solarization_prob, 0.3);
  EXPECT_DOUBLE_EQ(o->augment.global1.solarization_prob, 0.0);
  // The blur σ range is the spec's default at every crop size, not scaled to 28-px images.
  EXPECT_DOUBLE_EQ(o->augment.blur_sigma_min, 0.1);
  EXPECT_DOUBLE_EQ(o->augment.blur_sigma_max, 2.0);
  EXPECT_EQ(o->train.threads, 3);
  EXPECT_EQ(o->train.seed, 42u);
  EXPECT_EQ(o->checkpoint_every_steps, 25);
  EXPECT_EQ(o->eval_every_epochs, 2);
  EXPECT_EQ(o->data.kind, data::DatasetKind::kIdx);
  ASSERT_TRUE(o->eval_test.has_value());
  EXPECT_EQ(o->eval_test->path, "/d/t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(o->eval_test->labels_path, "/d/t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(o->eval_train->labels_path, "/d/train-labels-idx1-ubyte.gz");
  EXPECT_EQ(o->work_dir, "/w");
}

TEST(SpecConvertTest, RejectsWhatTheTrainerCannotRun) {
  dino::v1::JobSpec spec = FashionSpec();
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_UNSPECIFIED);
  absl::StatusOr<run::RunOptions> o = RunOptionsFromSpec(spec, {});
  ASSERT_FALSE(o.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(o.status()));
  EXPECT_NE(o.status().message().find("data.kind"), absl::string_view::npos) << o.status();

  spec = FashionSpec();
  spec.mutable_model()->set_heads(3);  // 64 is not divisible by 3.
  EXPECT_FALSE(RunOptionsFromSpec(spec, {}).ok());
}

absl::Status InPhase(absl::Status s, FailureKind kind) { return WithFailureKind(s, kind); }

TEST(ClassifyFailureTest, TellsUserErrorsFromInfrastructureFailures) {
  EXPECT_EQ(ClassifyFailure(InPhase(absl::NotFoundError("x"), FailureKind::kData)),
            dino::v1::FAILURE_REASON_BAD_DATASET);
  EXPECT_EQ(ClassifyFailure(InPhase(absl::DataLossError("x"), FailureKind::kCheckpoint)),
            dino::v1::FAILURE_REASON_CORRUPT_CHECKPOINT);
  EXPECT_EQ(ClassifyFailure(InPhase(absl::InvalidArgumentError("x"), FailureKind::kConfig)),
            dino::v1::FAILURE_REASON_INVALID_SPEC);
  EXPECT_EQ(ClassifyFailure(InPhase(absl::FailedPreconditionError("loss diverged at step 3"),
                                    FailureKind::kNonFiniteLoss)),
            dino::v1::FAILURE_REASON_NON_FINITE_LOSS);
  EXPECT_EQ(ClassifyFailure(
                InPhase(absl::ResourceExhaustedError("CUDA out of memory"), FailureKind::kTrain)),
            dino::v1::FAILURE_REASON_OUT_OF_MEMORY);
  EXPECT_EQ(ClassifyFailure(InPhase(absl::AbortedError("peer died"), FailureKind::kTrain)),
            dino::v1::FAILURE_REASON_COLLECTIVE_ABORT);
  EXPECT_EQ(ClassifyFailure(absl::InternalError("x")), dino::v1::FAILURE_REASON_INTERNAL);
}

// The reason is the kind the failure was tagged with where it happened, not words in a message:
// a FAILED_PRECONDITION that merely mentions "non-finite" (a path, a user's note, another check)
// is no non-finite loss, and the Trainer's own non-finite loss is one whatever it says.
TEST(ClassifyFailureTest, ReadsTheTypedKindNotTheMessage) {
  EXPECT_EQ(ClassifyFailure(InPhase(
                absl::FailedPreconditionError("dataset /data/non-finite-values/x.idx: bad header"),
                FailureKind::kTrain)),
            dino::v1::FAILURE_REASON_INTERNAL);
  EXPECT_EQ(ClassifyFailure(absl::FailedPreconditionError("non-finite loss (nan) at step 3")),
            dino::v1::FAILURE_REASON_INTERNAL);
}

}  // namespace
}  // namespace dino::agent
