// dino_blas_helper: a LibTorch program (it multiplies two small matrices, so OpenBLAS is loaded
// and used) that prints what worker/dino/blas_kernels.h makes of its own process:
//   facts: <OPENBLAS_CORETYPE or "unset"> <avx512 0|1> <loaded core, or "none">
//   description: <BlasDescription(), or "none">
//   warning: <BlasWarning(), or "none">
//   product: <the 2x2 product's four entries>
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "worker/dino/blas_kernels.h"

int main() {
  const torch::Tensor a = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2});
  const torch::Tensor p = torch::mm(a, a.t()).contiguous();
  const dino::BlasFacts f = dino::CurrentBlasFacts();
  const auto or_none = [](const std::string& s) { return s.empty() ? "none" : s; };
  std::printf("facts: %s %d %s\n", f.coretype_env ? f.coretype_env->c_str() : "unset",
              f.cpu_has_avx512 ? 1 : 0, or_none(f.loaded_core).c_str());
  std::printf("description: %s\n", or_none(dino::BlasDescription(f)).c_str());
  std::printf("warning: %s\n", or_none(dino::BlasWarning(f)).c_str());
  const float* v = p.data_ptr<float>();
  std::printf("product: %g %g %g %g\n", v[0], v[1], v[2], v[3]);
  return 0;
}
