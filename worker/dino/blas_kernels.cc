#include "worker/dino/blas_kernels.h"

#include <dlfcn.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace dino {
namespace {

// openblas_get_corename() of the OpenBLAS this process loaded, looked up at run time: a binary
// built against another BLAS (MKL in CUDA builds of LibTorch), or run where none is loaded,
// gets "".
std::string LoadedOpenBlasCore() {
  using CoreNameFn = char* (*)();
  auto* fn = reinterpret_cast<CoreNameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (fn == nullptr) return "";
  const char* name = fn();
  return name == nullptr ? "" : name;
}

bool CpuHasAvx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  // libgcc reports these only when the OS also saves the AVX-512 registers (XCR0).
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

// OpenBLAS's AVX2 and AVX kernel sets, the ones an OPENBLAS_CORETYPE is usually set to.
bool IsAvx2OrOlderCore(const std::string& core) {
  return core == "Haswell" || core == "Zen" || core == "Sandybridge";
}

}  // namespace

BlasFacts CurrentBlasFacts() {
  BlasFacts facts;
  if (const char* env = std::getenv("OPENBLAS_CORETYPE")) facts.coretype_env = env;
  facts.loaded_core = LoadedOpenBlasCore();
  facts.cpu_has_avx512 = CpuHasAvx512();
  return facts;
}

std::string BlasDescription(const BlasFacts& facts) {
  if (facts.loaded_core.empty()) return "";
  return absl::StrCat(
      "OpenBLAS ", facts.loaded_core, " kernels",
      facts.coretype_env ? absl::StrCat(" (OPENBLAS_CORETYPE=", *facts.coretype_env, ")") : "");
}

std::string BlasWarning(const BlasFacts& facts) {
  if (!facts.coretype_env || !facts.cpu_has_avx512 || !IsAvx2OrOlderCore(facts.loaded_core)) {
    return "";
  }
  return absl::StrCat("OPENBLAS_CORETYPE=", *facts.coretype_env, " holds OpenBLAS to its ",
                      facts.loaded_core,
                      " kernels on a CPU with AVX-512; unset it to let OpenBLAS choose (its "
                      "AVX-512 kernels train about 25% faster on an AMD Zen 5)");
}

}  // namespace dino
