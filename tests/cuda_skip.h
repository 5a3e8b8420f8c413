// DINO_SKIP_WITHOUT_CUDA(): the first statement of every test that needs a CUDA device. Without
// one (CI, the CPU tree) the test is skipped and counted as such: ctest reports it as "Skipped"
// (dino_test sets SKIP_REGULAR_EXPRESSION), so the summary says how many GPU tests did not run.
#pragma once

#include <gtest/gtest.h>
#include <torch/cuda.h>

#define DINO_SKIP_WITHOUT_CUDA()                                           \
  do {                                                                     \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)
