// dino-train: trains DINO in this process on one dataset, without the coordinator: the embedded
// default job of `make demo` (Fashion-MNIST, a small ViT, every core) and a quick way to try a
// configuration. It shows live progress, evaluates the teacher with the weighted k-NN on the
// labelled test split, and exports the teacher backbone for PyTorch.
//
//   dino-train [--data DIR] [--epochs N] [--batch N] [--threads N] [--work-dir DIR] [--resume CKPT]
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "common/file_system.h"
#include "worker/dino/collectives.h"
#include "worker/run/evaluate.h"
#include "worker/run/training_run.h"

namespace {

// The demo job: a 4-block ViT (dim 96) with 4-px patches on 28-px Fashion-MNIST, 2×28 global and
// 4×12 local crops, one epoch: sized to finish in minutes on a 2-core CPU.
dino::run::RunOptions FashionMnistDefaults(const std::string& dir) {
  dino::run::RunOptions o;
  dino::TrainConfig& t = o.train;
  t.model.preset = "custom";
  t.model.dim = 96;
  t.model.depth = 4;
  t.model.heads = 3;
  t.model.patch_size = 4;
  t.model.drop_path_rate = 0.1;
  t.head.out_dim = 2048;
  t.head.hidden = 512;
  t.head.bottleneck = 128;
  t.dino.warmup_teacher_temp = 0.04;
  t.dino.teacher_temp = 0.04;
  t.dino.warmup_teacher_temp_epochs = 0;
  t.dino.momentum_teacher = 0.99;
  t.optim.epochs = 1;
  t.optim.batch_size_per_rank = 128;
  t.optim.lr = 0.001;
  t.optim.warmup_epochs = 1;
  t.crops.global_crop_size = 28;
  t.crops.local_crop_size = 12;
  t.crops.n_local_crops = 4;
  t.seed = 0;
  o.augment = dino::data::AugmentOptions::ForResolution(28, 4);
  o.data.kind = "idx";
  o.data.path = dir + "/train-images-idx3-ubyte.gz";
  dino::data::DatasetSpec eval_train;
  eval_train.kind = "idx";
  eval_train.path = dir + "/train-images-idx3-ubyte.gz";
  eval_train.labels_path = dir + "/train-labels-idx1-ubyte.gz";
  dino::data::DatasetSpec eval_test = eval_train;
  eval_test.path = dir + "/t10k-images-idx3-ubyte.gz";
  eval_test.labels_path = dir + "/t10k-labels-idx1-ubyte.gz";
  o.eval_train = eval_train;
  o.eval_test = eval_test;
  o.progress_every_steps = 10;
  return o;
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  return s >= 3600 ? absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60)
                   : absl::StrFormat("%dm%02ds", s / 60, s % 60);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dino-train: DINO self-supervised training of a ViT in this process"};
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string work_dir = "dino-train-out";
  std::string resume;
  int64_t epochs = 0, batch = 0, threads = 0, eval_max_train = 0;
  app.add_option("--data", data_dir, "Folder with the Fashion-MNIST (or MNIST) IDX files")
      ->capture_default_str();
  app.add_option("--work-dir", work_dir, "Where checkpoints and the exported teacher go")
      ->capture_default_str();
  app.add_option("--epochs", epochs, "Training epochs (default 1)")->check(CLI::Range(1, 100000));
  app.add_option("--batch", batch, "Batch size (default 128)")->check(CLI::Range(2, 65536));
  app.add_option("--threads", threads, "Intra-op threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--eval-max-train", eval_max_train,
                 "Use at most this many training images as k-NN references (default: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--resume", resume, "Continue from this checkpoint");
  app.footer("Example: dino-train --epochs 1 --work-dir /tmp/dino");
  CLI11_PARSE(app, argc, argv);

  dino::run::RunOptions options = FashionMnistDefaults(data_dir);
  if (epochs > 0) options.train.optim.epochs = epochs;
  if (batch > 0) options.train.optim.batch_size_per_rank = batch;
  options.train.threads = threads;
  options.eval_max_train = eval_max_train;
  options.work_dir = work_dir;
  options.resume_from = resume;

  dino::LocalCollectives collectives;
  dino::LocalGradientSync sync;
  auto run = dino::run::TrainingRun::Create(options, &collectives, &sync,
                                            dino::DefaultFileSystem());
  if (!run.ok()) {
    std::cerr << "dino-train: " << run.status() << "\n";
    return 1;
  }
  const bool tty = isatty(fileno(stdout));
  const dino::TrainConfig& cfg = (*run)->trainer().config();
  std::printf("dino-train: ViT dim %ld depth %ld heads %ld patch %ld, K %ld, %ld epochs x %ld "
              "steps, batch %ld, %d threads\n",
              static_cast<long>(cfg.model.dim), static_cast<long>(cfg.model.depth),
              static_cast<long>(cfg.model.heads), static_cast<long>(cfg.model.patch_size),
              static_cast<long>(cfg.head.out_dim), static_cast<long>(cfg.optim.epochs),
              static_cast<long>(cfg.steps_per_epoch), static_cast<long>(cfg.global_batch()),
              at::get_num_threads());
  std::fflush(stdout);

  dino::run::RunCallbacks callbacks;
  callbacks.on_progress = [&](const dino::run::Progress& p) {
    const int64_t done = p.step.step + 1;
    const double eta = p.images_per_second > 0
                           ? static_cast<double>((p.total_steps - done) * cfg.global_batch()) /
                                 p.images_per_second
                           : 0;
    std::printf("%sepoch %ld/%ld step %ld/%ld  loss %.4f  lr %.2e  T_t %.3f  H(t) %.3f  "
                "H(mean t) %.3f  KL %.4f  |C| %.4f  %.0f img/s  wait %.0f%%  ETA %s%s",
                tty ? "\r\033[K" : "", static_cast<long>(p.step.epoch + 1),
                static_cast<long>(cfg.optim.epochs), static_cast<long>(done),
                static_cast<long>(p.total_steps), p.step.loss, p.step.lr, p.step.teacher_temp,
                p.step.teacher_entropy, p.step.batch_mean_entropy, p.step.kl_teacher_student,
                p.step.center_norm, p.images_per_second, 100 * p.data_wait_fraction,
                FormatDuration(eta).c_str(), tty ? "" : "\n");
    std::fflush(stdout);
  };
  callbacks.on_checkpoint = [&](const dino::run::CheckpointInfo& c) {
    std::printf("%scheckpoint %s (step %ld)\n", tty ? "\r\033[K" : "", c.path.c_str(),
                static_cast<long>(c.step));
    return absl::OkStatus();
  };
  callbacks.on_eval_progress = [&](int64_t done, int64_t total) {
    if (tty) std::printf("\r\033[Kk-NN evaluation: embedded %ld/%ld images", (long)done, (long)total);
    std::fflush(stdout);
  };
  callbacks.on_eval = [&](const dino::run::EvalInfo& e) {
    std::printf("%sk-NN top-1 after epoch %ld: %.2f%% (%ld/%ld)\n", tty ? "\r\033[K" : "",
                static_cast<long>(e.epoch), e.knn.top1, static_cast<long>(e.knn.correct),
                static_cast<long>(e.knn.total));
  };
  auto result = (*run)->Run(callbacks);
  if (!result.ok()) {
    std::cerr << "\ndino-train: " << result.status() << "\n";
    return 1;
  }
  std::printf("\ntrained %ld steps in %s\n", static_cast<long>(result->steps),
              FormatDuration(result->train_seconds).c_str());
  if (result->knn.has_value()) {
    std::printf("k-NN top-1 (k=20, T=0.07) on the test split: %.2f%%\n", result->knn->top1);
  }
  std::printf("last checkpoint: %s\nexported teacher: %s\n", result->last_checkpoint.c_str(),
              result->exported_teacher.c_str());
  return 0;
}
