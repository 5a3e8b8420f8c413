// What worker/dino/blas_kernels.h says about a process's BLAS: the description and the warning
// for every case, and for real through dino_blas_helper, a LibTorch process run with
// OPENBLAS_CORETYPE unset and set.
#include "worker/dino/blas_kernels.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace dino {
namespace {

using ::testing::HasSubstr;

BlasFacts Facts(std::optional<std::string> env, std::string core, bool avx512) {
  BlasFacts f;
  f.coretype_env = std::move(env);
  f.loaded_core = std::move(core);
  f.cpu_has_avx512 = avx512;
  return f;
}

TEST(BlasDescription, NamesTheKernelsAndTheVariableThatChoseThem) {
  EXPECT_EQ(BlasDescription(Facts(std::nullopt, "Cooperlake", true)),
            "OpenBLAS Cooperlake kernels");
  EXPECT_EQ(BlasDescription(Facts("Haswell", "Haswell", true)),
            "OpenBLAS Haswell kernels (OPENBLAS_CORETYPE=Haswell)");
  // OpenBLAS spells the variable's value its own way; both are shown.
  EXPECT_EQ(BlasDescription(Facts("skylakex", "SkylakeX", true)),
            "OpenBLAS SkylakeX kernels (OPENBLAS_CORETYPE=skylakex)");
  EXPECT_EQ(BlasDescription(Facts(std::nullopt, "", true)), "");
  EXPECT_EQ(BlasDescription(Facts("Haswell", "", true)), "");
}

TEST(BlasWarning, OnlyWhenTheVariableHoldsAnAvx512CpuToOlderKernels) {
  for (const char* core : {"Haswell", "Zen", "Sandybridge"}) {
    const std::string warning = BlasWarning(Facts(core, core, true));
    EXPECT_THAT(warning, HasSubstr(absl::StrCat("OPENBLAS_CORETYPE=", core,
                                                " holds OpenBLAS to "
                                                "its ",
                                                core, " kernels on a CPU with AVX-512")));
    EXPECT_THAT(warning, HasSubstr("unset it"));
  }
  // OpenBLAS's own choice, whatever it is.
  EXPECT_EQ(BlasWarning(Facts(std::nullopt, "Haswell", true)), "");
  // No AVX-512 (or an OS that does not save its registers): AVX2 kernels are right.
  EXPECT_EQ(BlasWarning(Facts("Haswell", "Haswell", false)), "");
  // The variable chose AVX-512 kernels.
  EXPECT_EQ(BlasWarning(Facts("SkylakeX", "SkylakeX", true)), "");
  EXPECT_EQ(BlasWarning(Facts("Cooperlake", "Cooperlake", true)), "");
  // Not OpenBLAS.
  EXPECT_EQ(BlasWarning(Facts("Haswell", "", true)), "");
}

std::string RunHelper(const std::string& env) {
  const std::string cmd = absl::StrCat(env, " ", DINO_BLAS_HELPER, " 2>&1");
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  char buf[512];
  while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  if (const int status = pclose(pipe); status != 0) out += absl::StrCat("exit status ", status);
  return out;
}

// The helper's "facts:" line: {env, avx512, core}.
std::tuple<std::string, int, std::string> HelperFacts(const std::string& out) {
  char env[64] = {0}, core[64] = {0};
  int avx512 = -1;
  const size_t at = out.find("facts: ");
  if (at == std::string::npos ||
      std::sscanf(out.c_str() + at, "facts: %63s %d %63s", env, &avx512, core) != 3) {
    ADD_FAILURE() << "dino_blas_helper printed: " << out;
  }
  return {env, avx512, core};
}

TEST(BlasKernelsInALibTorchProcess, WithOpenBlasChoosing) {
  const std::string out = RunHelper("env -u OPENBLAS_CORETYPE");
  const auto [env, avx512, core] = HelperFacts(out);
  EXPECT_EQ(env, "unset");
  EXPECT_THAT(out, HasSubstr("product: 5 11 11 25\n"));
  if (core == "none") GTEST_SKIP() << "LibTorch does not use OpenBLAS here";
  EXPECT_THAT(out, HasSubstr(absl::StrCat("description: OpenBLAS ", core, " kernels\n")));
  EXPECT_THAT(out, HasSubstr("warning: none\n"));
}

TEST(BlasKernelsInALibTorchProcess, WithTheVariableSetToHaswell) {
  const std::string out = RunHelper("env OPENBLAS_CORETYPE=Haswell");
  const auto [env, avx512, core] = HelperFacts(out);
  EXPECT_EQ(env, "Haswell");
  EXPECT_THAT(out, HasSubstr("product: 5 11 11 25\n"));
  if (core == "none") GTEST_SKIP() << "LibTorch does not use OpenBLAS here";
  EXPECT_EQ(core, "Haswell");
  EXPECT_THAT(out,
              HasSubstr("description: OpenBLAS Haswell kernels (OPENBLAS_CORETYPE=Haswell)\n"));
  if (avx512 == 1) {
    EXPECT_THAT(out, HasSubstr("warning: OPENBLAS_CORETYPE=Haswell holds OpenBLAS to its Haswell "
                               "kernels on a CPU with AVX-512"));
  } else {
    EXPECT_THAT(out, HasSubstr("warning: none\n"));
  }
}

}  // namespace
}  // namespace dino
