// End to end on a GPU: a real dino-coordinator and `dino-worker --device cuda:0` train
// examples/fashion-mnist-gpu.yaml (submitted with dinoctl, as a user would) to the example's
// k-NN goal, and `dinoctl export` of the result loads with strict=True into the reference ViT in
// PyTorch. Skipped without a CUDA device; scripts/gpu-check runs it on one.
//
// Environment: DINO_FASHION_MNIST_DIR, the folder of the four IDX files (default: Debian's
// dataset-fashion-mnist, /usr/share/datasets/fashion-mnist); DINO_PYTHON, a python3 with torch
// (default: the one this tree's LibTorch came with, else python3).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/cuda_skip.h"
#include "tests/e2e/cluster.h"

namespace dino::e2e {
namespace {

// The example's goal on one GPU (raw pixels give 84.6% with the same k-NN).
constexpr double kExampleKnnGoal = 88.0;
constexpr absl::Duration kGpuJobTimeout = absl::Minutes(6);

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// Runs `command` through the shell; returns its exit status and stdout+stderr in *output.
int RunShell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(GpuJobE2E, FashionMnistGpuExampleReachesItsKnnAndExportsForPyTorch) {
  DINO_SKIP_WITHOUT_CUDA();
  const std::string root = std::getenv("DINO_SOURCE_ROOT");
  const std::string data = Env("DINO_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist");
  ASSERT_TRUE(std::ifstream(data + "/train-images-idx3-ubyte.gz").good())
      << "no Fashion-MNIST in " << data << " (set DINO_FASHION_MNIST_DIR)";
  Cluster cluster("gpu-job");
  cluster.worker_device = "cuda:0";
  cluster.StartCoordinator();
  cluster.StartWorker(0);

  std::string out;
  const std::string submit = absl::StrCat(
      DINOCTL_BIN, " --coordinator ", cluster.coordinator_address(), " submit ", root,
      "/examples/fashion-mnist-gpu.yaml", " --set data.path=", data,
      "/train-images-idx3-ubyte.gz --set data.labels_path=", data,
      "/train-labels-idx1-ubyte.gz --set data.eval_path=", data,
      "/t10k-images-idx3-ubyte.gz --set data.eval_labels_path=", data,
      "/t10k-labels-idx1-ubyte.gz");
  ASSERT_EQ(RunShell(submit, &out), 0) << submit << "\n" << out;
  const std::string job_id(absl::StripAsciiWhitespace(out));
  ASSERT_FALSE(job_id.empty());

  const absl::Time start = absl::Now();
  auto done = cluster.WaitTerminal(job_id, kGpuJobTimeout);
  ASSERT_TRUE(done.ok()) << done.status() << "\n" << cluster.Logs();
  ASSERT_EQ(done->state(), dino::v1::JOB_STATE_SUCCEEDED) << done->DebugString() << cluster.Logs();
  ASSERT_TRUE(done->has_latest_knn_top1()) << done->DebugString();
  std::cout << "fashion-mnist-gpu: k-NN top-1 " << done->latest_knn_top1() << "% after "
            << absl::FormatDuration(absl::Now() - start) << " (step "
            << done->latest_stats().step() << ")\n";
  EXPECT_GE(done->latest_knn_top1(), kExampleKnnGoal);

  const std::string exported = cluster.dir() + "/teacher.pt";
  out.clear();
  const std::string export_cmd =
      absl::StrCat(DINOCTL_BIN, " --coordinator ", cluster.coordinator_address(), " export ",
                   job_id, " -o ", exported);
  ASSERT_EQ(RunShell(export_cmd, &out), 0) << export_cmd << "\n" << out;
  out.clear();
  const std::string load = absl::StrCat(Env("DINO_PYTHON", DINO_TEST_PYTHON), " ", root,
                                        "/tests/e2e/load_export.py ", exported, " 3");
  EXPECT_EQ(RunShell(load, &out), 0) << load << "\n" << out;
  std::cout << out;
}

}  // namespace
}  // namespace dino::e2e
