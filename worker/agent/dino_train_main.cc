// dino-train: trains one job spec in this process, without the coordinator: the same training a
// one-rank job gets from dino-worker (the spec goes through the coordinator's defaults and checks,
// then through the worker's conversion), with live progress, the weighted k-NN on the labelled
// test split and the exported teacher. --eval-only scores the teacher without training: at
// random initialisation (the baseline a trained teacher must beat), or as in --resume's checkpoint.
//
//   dino-train --spec examples/fashion-mnist.yaml [--set optim.epochs=2] [--work-dir DIR]
//              [--threads N] [--resume CKPT] [--eval-only]
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "common/file_system.h"
#include "spec/job_spec.h"
#include "spec/spec_file.h"
#include "worker/agent/spec_convert.h"
#include "worker/dino/blas_kernels.h"
#include "worker/dino/collectives.h"
#include "worker/run/training_run.h"

namespace {

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  return s >= 3600 ? absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60)
                   : absl::StrFormat("%dm%02ds", s / 60, s % 60);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dino-train: DINO self-supervised training of one job spec in this process"};
  std::string spec_path;
  std::vector<std::string> overrides;
  std::string work_dir = "dino-train-out";
  std::string resume;
  int threads = 0;
  bool eval_only = false;
  app.add_option("--spec", spec_path, "Job spec file (YAML or JSON), as for `dinoctl submit`")
      ->required();
  app.add_option("--set", overrides, "Override one spec field, e.g. --set optim.epochs=2");
  app.add_option("--work-dir", work_dir, "Where checkpoints and the exported teacher go");
  app.add_option("--threads", threads, "Intra-op threads (default: all cores)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--resume", resume, "Continue from this checkpoint");
  app.add_flag("--eval-only", eval_only,
               "Only the k-NN evaluation of the teacher: untrained, or as in --resume");
  app.footer(
      "Example: dino-train --spec examples/fashion-mnist.yaml --eval-only   (random-init "
      "baseline)");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<dino::v1::JobSpec> spec =
      dino::spec::LoadJobSpecFile(dino::DefaultFileSystem(), spec_path, overrides);
  if (!spec.ok()) {
    std::cerr << "dino-train: " << spec.status().message() << "\n";
    return 2;
  }
  dino::spec::ApplyJobSpecDefaults(&*spec);
  if (absl::Status valid = dino::spec::ValidateJobSpec(*spec); !valid.ok()) {
    std::cerr << "dino-train: " << spec_path << ": " << valid.message() << "\n";
    return 2;
  }
  if (spec->resources().world_size() != 1 ||
      spec->resources().device() != dino::v1::DEVICE_KIND_CPU) {
    std::cerr << "dino-train: runs one CPU rank; submit jobs with world_size > 1 or CUDA to the "
                 "coordinator (override with --set resources.world_size=1 "
                 "--set resources.device=DEVICE_KIND_CPU)\n";
    return 2;
  }
  dino::agent::LocalResources local;
  local.threads = threads;
  local.work_dir = work_dir;
  absl::StatusOr<dino::run::RunOptions> options = dino::agent::RunOptionsFromSpec(*spec, local);
  if (!options.ok()) {
    std::cerr << "dino-train: " << options.status().message() << "\n";
    return 2;
  }
  options->resume_from = resume;

  dino::LocalCollectives collectives;
  dino::LocalGradientSync sync;
  auto run = dino::run::TrainingRun::Create(*std::move(options), &collectives, &sync,
                                            dino::DefaultFileSystem());
  if (!run.ok()) {
    std::cerr << "dino-train: " << run.status() << "\n";
    return 1;
  }
  const bool tty = isatty(fileno(stdout));
  const dino::TrainConfig& cfg = (*run)->trainer().config();
  const dino::BlasFacts blas_facts = dino::CurrentBlasFacts();
  const std::string blas = dino::BlasDescription(blas_facts);
  if (std::string warning = dino::BlasWarning(blas_facts); !warning.empty()) {
    std::cerr << "dino-train: " << warning << "\n";
  }
  std::printf(
      "dino-train: %s: ViT dim %ld depth %ld heads %ld patch %ld, K %ld, %ld epochs x %ld "
      "steps, batch %ld, %d threads%s%s\n",
      spec_path.c_str(), static_cast<long>(cfg.model.dim), static_cast<long>(cfg.model.depth),
      static_cast<long>(cfg.model.heads), static_cast<long>(cfg.model.patch_size),
      static_cast<long>(cfg.head.out_dim), static_cast<long>(cfg.optim.epochs),
      static_cast<long>(cfg.steps_per_epoch), static_cast<long>(cfg.global_batch()),
      at::get_num_threads(), blas.empty() ? "" : ", ", blas.c_str());
  std::fflush(stdout);

  dino::run::RunCallbacks callbacks;
  callbacks.on_progress = [&](const dino::run::Progress& p) {
    const int64_t done = p.step.step + 1;
    const double eta =
        p.images_per_second > 0
            ? static_cast<double>((p.total_steps - done) * cfg.global_batch()) / p.images_per_second
            : 0;
    std::printf(
        "%sepoch %ld/%ld step %ld/%ld  loss %.4f  lr %.2e  T_t %.3f  H(t) %.3f  "
        "H(mean t) %.3f  KL %.4f  |C| %.4f  %.0f img/s  wait %.0f%%  ETA %s%s",
        tty ? "\r\033[K" : "", static_cast<long>(p.step.epoch + 1),
        static_cast<long>(cfg.optim.epochs), static_cast<long>(done),
        static_cast<long>(p.total_steps), p.step.loss, p.step.lr, p.step.teacher_temp,
        p.step.teacher_entropy, p.step.batch_mean_entropy, p.step.kl_teacher_student,
        p.step.center_norm, p.images_per_second, 100 * p.data_wait_fraction,
        FormatDuration(eta).c_str(), tty ? "" : "\n");
    std::fflush(stdout);
  };
  callbacks.on_checkpoint = [&](const dino::run::LocalCheckpoint& c) {
    std::printf("%scheckpoint %s (step %ld)\n", tty ? "\r\033[K" : "", c.path.c_str(),
                static_cast<long>(c.step));
    return absl::OkStatus();
  };
  callbacks.on_eval_progress = [&](int64_t done, int64_t total) {
    if (tty)
      std::printf("\r\033[Kk-NN evaluation: embedded %ld/%ld images", (long)done, (long)total);
    std::fflush(stdout);
  };
  callbacks.on_eval = [&](const dino::run::EvalInfo& e) {
    std::printf("%sk-NN top-1 at step %ld (epoch %ld): %.2f%% (%ld/%ld)\n", tty ? "\r\033[K" : "",
                static_cast<long>(e.step), static_cast<long>(e.epoch), e.knn.top1,
                static_cast<long>(e.knn.correct), static_cast<long>(e.knn.total));
  };

  if (eval_only) {
    absl::StatusOr<dino::KnnResult> knn = (*run)->EvaluateTeacher(callbacks);
    if (!knn.ok()) {
      std::cerr << "\ndino-train: " << knn.status() << "\n";
      return 1;
    }
    std::printf("k-NN top-1 (k=%ld, T=%.2f) of the %s teacher on the test split: %.2f%%\n",
                static_cast<long>(spec->eval().knn_k()), spec->eval().knn_temperature(),
                resume.empty() ? "untrained" : "resumed", knn->top1);
    return 0;
  }
  auto result = (*run)->Run(callbacks);
  if (!result.ok()) {
    std::cerr << "\ndino-train: " << result.status() << "\n";
    return 1;
  }
  std::printf("\ntrained %ld steps in %s (%s without the k-NN evaluations between epochs)\n",
              static_cast<long>(result->steps), FormatDuration(result->train_seconds).c_str(),
              FormatDuration(result->train_seconds - result->eval_seconds).c_str());
  if (result->knn.has_value()) {
    std::printf("k-NN top-1 (k=%ld, T=%.2f) on the test split: %.2f%%\n",
                static_cast<long>(spec->eval().knn_k()), spec->eval().knn_temperature(),
                result->knn->top1);
  }
  std::printf("last checkpoint: %s\nexported teacher: %s\n", result->last_checkpoint.c_str(),
              result->exported_teacher.c_str());
  return 0;
}
