// TrainingRun::EvaluateTeacher: the k-NN of the teacher without training (the random-init baseline
// that `dino-train --eval-only` prints), and the time a run spends in its evaluations, on a tiny
// synthetic job.
#include "worker/run/training_run.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/file_system.h"
#include "tests/worker/dino/test_util.h"
#include "worker/dino/collectives.h"

namespace dino::run {
namespace {

RunOptions TinyOptions(bool with_eval) {
  RunOptions o;
  o.train = dino::testing::TinyConfig();  // 16-px, 3-channel, 2 local crops of 8.
  o.augment = data::AugmentOptions::ForResolution(16, 2);
  o.data.kind = data::DatasetKind::kSynthetic;
  o.data.synthetic.size = 32;
  o.data.synthetic.resolution = 16;
  o.data.synthetic.num_classes = 2;
  if (with_eval) {
    o.eval_train = o.data;
    data::DatasetSpec test = o.data;
    test.synthetic.seed = 7;
    test.synthetic.size = 20;
    o.eval_test = test;
  }
  o.loader_threads = 1;
  o.work_dir = absl::StrCat(::testing::TempDir(), "/training_run_test_", getpid());
  return o;
}

TEST(TrainingRunTest, EvaluateTeacherScoresTheUntrainedTeacherOnTheWholeTestSplit) {
  LocalCollectives collectives;
  LocalGradientSync sync;
  auto training = TrainingRun::Create(TinyOptions(true), &collectives, &sync, DefaultFileSystem());
  ASSERT_TRUE(training.ok()) << training.status();
  std::vector<EvalInfo> evals;
  int64_t last_done = 0, last_total = 0;
  RunCallbacks callbacks;
  callbacks.on_eval = [&](const EvalInfo& e) { evals.push_back(e); };
  callbacks.on_eval_progress = [&](int64_t done, int64_t total) {
    last_done = done;
    last_total = total;
  };
  absl::StatusOr<KnnResult> knn = (*training)->EvaluateTeacher(callbacks);
  ASSERT_TRUE(knn.ok()) << knn.status();
  EXPECT_EQ(knn->total, 20);
  EXPECT_GE(knn->correct, 0);
  EXPECT_LE(knn->correct, 20);
  EXPECT_DOUBLE_EQ(knn->top1, 100.0 * knn->correct / 20);
  EXPECT_EQ((*training)->trainer().step(), 0);  // No training happened.
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0].step, 0);
  EXPECT_EQ(evals[0].epoch, 0);
  EXPECT_EQ(evals[0].knn.correct, knn->correct);
  EXPECT_EQ(last_total, 32 + 20);  // Reference and test images embedded.
  EXPECT_EQ(last_done, last_total);

  // The same seed builds the same untrained teacher: the baseline is reproducible.
  auto again = TrainingRun::Create(TinyOptions(true), &collectives, &sync, DefaultFileSystem());
  ASSERT_TRUE(again.ok()) << again.status();
  absl::StatusOr<KnnResult> knn2 = (*again)->EvaluateTeacher({});
  ASSERT_TRUE(knn2.ok()) << knn2.status();
  EXPECT_EQ(knn2->correct, knn->correct);
}

TEST(TrainingRunTest, EvaluateTeacherWithoutAnEvalSplitIsAFailedPrecondition) {
  LocalCollectives collectives;
  LocalGradientSync sync;
  auto training = TrainingRun::Create(TinyOptions(false), &collectives, &sync, DefaultFileSystem());
  ASSERT_TRUE(training.ok()) << training.status();
  absl::StatusOr<KnnResult> knn = (*training)->EvaluateTeacher({});
  EXPECT_EQ(knn.status().code(), absl::StatusCode::kFailedPrecondition) << knn.status();
}

TEST(TrainingRunTest, TheEvaluationsBetweenEpochsAreTimedApartFromTraining) {
  for (const int64_t every : {int64_t{1}, int64_t{0}}) {
    SCOPED_TRACE(absl::StrCat("eval_every_epochs ", every));
    LocalCollectives collectives;
    LocalGradientSync sync;
    RunOptions options = TinyOptions(true);
    options.eval_every_epochs = every;
    options.work_dir += absl::StrCat("_every", every);
    auto training = TrainingRun::Create(options, &collectives, &sync, DefaultFileSystem());
    ASSERT_TRUE(training.ok()) << training.status();
    int evals = 0;
    RunCallbacks callbacks;
    callbacks.on_eval = [&](const EvalInfo&) { ++evals; };
    absl::StatusOr<RunResult> result = (*training)->Run(callbacks);
    ASSERT_TRUE(result.ok()) << result.status();
    const int64_t epochs = (*training)->trainer().config().optim.epochs;
    ASSERT_GE(epochs, 2);
    EXPECT_GT(result->train_seconds, 0);
    if (every == 1) {
      EXPECT_EQ(evals, epochs);  // After each epoch but the last, then the final one.
      EXPECT_GT(result->eval_seconds, 0);
      EXPECT_LT(result->eval_seconds, result->train_seconds);
    } else {
      EXPECT_EQ(evals, 1);  // The final one, after train_seconds.
      EXPECT_EQ(result->eval_seconds, 0);
    }
  }
}

}  // namespace
}  // namespace dino::run
