// Which BLAS kernels LibTorch's CPU matmuls run on, for run headers and startup logs.
//
// Debian's LibTorch calls OpenBLAS (libopenblas0-openmp), built with DYNAMIC_ARCH: it picks its
// kernels once, when the library is loaded, from OPENBLAS_CORETYPE or else from its own CPU
// detection. An OPENBLAS_CORETYPE left in an environment can hold an AVX-512 CPU to AVX2
// kernels: on the AMD Zen 5 this project is tuned on, OPENBLAS_CORETYPE=Haswell trains the
// Fashion-MNIST example about 25% slower than OpenBLAS's own choice (Cooperlake). The variable
// is the operator's to set, so nothing here changes it: the kernels are named, and a variable
// that costs speed is pointed out.
#ifndef DINO_WORKER_DINO_BLAS_KERNELS_H_
#define DINO_WORKER_DINO_BLAS_KERNELS_H_

#include <optional>
#include <string>

namespace dino {

// What the process knows about its BLAS.
struct BlasFacts {
  std::optional<std::string> coretype_env;  // OPENBLAS_CORETYPE, when set.
  std::string loaded_core;      // openblas_get_corename(); empty when OpenBLAS is not loaded.
  bool cpu_has_avx512 = false;  // AVX-512 F, CD, BW, DQ and VL, with the OS saving zmm state.
};

// The facts of this process and this machine.
BlasFacts CurrentBlasFacts();

// "OpenBLAS Cooperlake kernels", or "OpenBLAS Haswell kernels (OPENBLAS_CORETYPE=Haswell)" when
// the variable is set; "" when the process does not use OpenBLAS.
std::string BlasDescription(const BlasFacts& facts);

// A one-line warning when OPENBLAS_CORETYPE holds a CPU with AVX-512 to OpenBLAS's AVX2 (or
// older) kernels, saying what to do about it; "" otherwise.
std::string BlasWarning(const BlasFacts& facts);

}  // namespace dino

#endif  // DINO_WORKER_DINO_BLAS_KERNELS_H_
