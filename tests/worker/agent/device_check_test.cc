// dino-worker's --device check: the parser, every refusal with the facts given (so that a machine
// without a GPU tests them all), and the real dino-worker binary refusing a CUDA device that this
// build or machine does not have, at startup and before it tries to reach the coordinator.
#include "worker/agent/device_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/worker/agent/run_worker.h"

namespace dino::agent {
namespace {

using ::testing::HasSubstr;

CudaFacts CpuBuild() {
  CudaFacts facts;
  facts.built_with_cuda = false;
  facts.torch_version = "1.13.0";
  return facts;
}

CudaFacts CudaBuild(absl::StatusOr<int64_t> count) {
  CudaFacts facts;
  facts.built_with_cuda = true;
  facts.torch_version = "2.11.0";
  facts.device_count = std::move(count);
  return facts;
}

TEST(DeviceCheckTest, ParsesCpuCudaAndCudaN) {
  auto cpu = ParseWorkerDevice("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_FALSE(cpu->cuda);
  auto cuda = ParseWorkerDevice("cuda");
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  EXPECT_TRUE(cuda->cuda);
  EXPECT_EQ(cuda->index, 0);
  auto twelve = ParseWorkerDevice("cuda:12");
  ASSERT_TRUE(twelve.ok()) << twelve.status();
  EXPECT_TRUE(twelve->cuda);
  EXPECT_EQ(twelve->index, 12);
}

TEST(DeviceCheckTest, MalformedValuesAreInvalidArgumentNamingTheFlag) {
  for (const char* flag : {"gpu", "cuda:x", "cuda:-1", "cuda:", "", "CUDA:0", "cuda:+1", "cuda: 1",
                           "cuda:1x", "cpu:0"}) {
    absl::Status status = CheckWorkerDevice(flag, CudaBuild(4));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_EQ(status.message(),
              absl::StrCat("--device ", flag,
                           ": must be cpu, cuda or cuda:N with N a device index >= 0"));
    // The same without facts: a malformed flag is refused before LibTorch is asked anything.
    EXPECT_EQ(CheckWorkerDevice(flag).code(), absl::StatusCode::kInvalidArgument) << flag;
  }
}

TEST(DeviceCheckTest, CpuIsAlwaysUsable) {
  EXPECT_TRUE(CheckWorkerDevice("cpu", CpuBuild()).ok());
  EXPECT_TRUE(CheckWorkerDevice("cpu", CudaBuild(0)).ok());
  EXPECT_TRUE(CheckWorkerDevice("cpu", CudaBuild(absl::InternalError("driver"))).ok());
  EXPECT_TRUE(CheckWorkerDevice("cpu").ok());
}

TEST(DeviceCheckTest, ACpuOnlyBuildRefusesCudaAndSaysHowToBuildForIt) {
  absl::Status status = CheckWorkerDevice("cuda:0", CpuBuild());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "--device cuda:0: this dino-worker was built for CPU only (LibTorch 1.13.0 without "
            "CUDA); build with DINO_WITH_CUDA=ON");
  EXPECT_EQ(CheckWorkerDevice("cuda", CpuBuild()).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DeviceCheckTest, NoVisibleDeviceNamesTheCount) {
  absl::Status status = CheckWorkerDevice("cuda:0", CudaBuild(0));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "--device cuda:0: no CUDA device is visible (torch::cuda::device_count() = 0); check "
            "the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES");
  EXPECT_THAT(CheckWorkerDevice("cuda", CudaBuild(0)).message(),
              HasSubstr("--device cuda: no CUDA device is visible"));
}

TEST(DeviceCheckTest, AnIndexBeyondTheVisibleDevicesListsThem) {
  EXPECT_EQ(CheckWorkerDevice("cuda:2", CudaBuild(1)).message(),
            "--device cuda:2: only 1 CUDA device is visible (cuda:0)");
  EXPECT_EQ(CheckWorkerDevice("cuda:1", CudaBuild(1)).message(),
            "--device cuda:1: only 1 CUDA device is visible (cuda:0)");
  EXPECT_EQ(CheckWorkerDevice("cuda:3", CudaBuild(2)).message(),
            "--device cuda:3: only 2 CUDA devices are visible (cuda:0, cuda:1)");
  EXPECT_EQ(CheckWorkerDevice("cuda:8", CudaBuild(8)).message(),
            "--device cuda:8: only 8 CUDA devices are visible (cuda:0 ... cuda:7)");
  EXPECT_EQ(CheckWorkerDevice("cuda:8", CudaBuild(8)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(DeviceCheckTest, AVisibleDeviceIsUsable) {
  EXPECT_TRUE(CheckWorkerDevice("cuda:0", CudaBuild(1)).ok());
  EXPECT_TRUE(CheckWorkerDevice("cuda", CudaBuild(1)).ok());
  EXPECT_TRUE(CheckWorkerDevice("cuda:7", CudaBuild(8)).ok());
}

TEST(DeviceCheckTest, ACountThatCannotBeReadIsReported) {
  absl::Status status = CheckWorkerDevice(
      "cuda:0", CudaBuild(absl::InternalError("torch::cuda::device_count(): driver too old")));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "--device cuda:0: could not count CUDA devices: torch::cuda::device_count(): driver "
            "too old");
}

TEST(DeviceCheckTest, TheFactsOfThisBuild) {
  const CudaFacts facts = CurrentCudaFacts();
  EXPECT_FALSE(facts.torch_version.empty());
#if defined(DINO_WITH_CUDA)
  EXPECT_TRUE(facts.built_with_cuda);
#else
  EXPECT_FALSE(facts.built_with_cuda);
  EXPECT_EQ(*facts.device_count, 0);
#endif
}

using dino::agent::test_support::RunResult;
using dino::agent::test_support::RunWorker;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// Port 1 on loopback: nothing listens there, so only a worker that skipped the check would try it.
constexpr char kCommonArgs[] = "--coordinator 127.0.0.1:1 --rendezvous-port 29999 --work-dir /tmp";

TEST(DinoWorkerBinaryTest, ACudaDeviceThisMachineCannotGiveStopsTheWorkerAtStartup) {
  const CudaFacts facts = CurrentCudaFacts();
  // One past the visible devices: unusable in every build and on every machine (cuda:0 where
  // there is no GPU or no CUDA build).
  const int64_t index = facts.device_count.ok() ? *facts.device_count : 0;
  const std::string flag = absl::StrCat("cuda:", index);
  const absl::Status expected = CheckWorkerDevice(flag, facts);
  ASSERT_FALSE(expected.ok());
  RunResult result = RunWorker(absl::StrCat("--device ", flag, " ", kCommonArgs));
  EXPECT_EQ(result.exit_code, 2) << result.output;
  const std::vector<std::string> lines = Lines(result.output);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), absl::StrCat("dino-worker: ", expected.message()));
#if !defined(DINO_WITH_CUDA)
  EXPECT_EQ(lines.size(), 1u) << result.output;
  EXPECT_EQ(lines.back(),
            absl::StrCat("dino-worker: --device cuda:0: this dino-worker was built for CPU only "
                         "(LibTorch ",
                         facts.torch_version, " without CUDA); build with DINO_WITH_CUDA=ON"));
#endif
}

TEST(DinoWorkerBinaryTest, AMalformedDeviceStopsTheWorkerWithOneLine) {
  for (const char* flag : {"gpu", "cuda:x", "cuda:-1"}) {
    RunResult result = RunWorker(absl::StrCat("--device ", flag, " ", kCommonArgs));
    EXPECT_EQ(result.exit_code, 2) << flag << ": " << result.output;
    EXPECT_EQ(result.output,
              absl::StrCat("dino-worker: --device ", flag,
                           ": must be cpu, cuda or cuda:N with N a device index >= 0\n"));
  }
}

}  // namespace
}  // namespace dino::agent
