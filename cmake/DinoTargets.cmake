# Project-wide target defaults: warnings as errors for project code, optional sanitizers.
#
# dino_target_defaults(TARGET [NO_SANITIZE] [NO_PCH] [UNITY])
#   Applies -Wall -Wextra -Werror. With DINO_SANITIZE=ON it also applies ASan+UBSan unless
#   NO_SANITIZE is given (LibTorch-loading targets: Debian's libtorch is not built for ASan).
#   NO_SANITIZE targets are the LibTorch ones, so they also reuse dino_model's precompiled
#   <torch/torch.h>: parsing it costs ~45 s per translation unit on a loaded 2-core machine, loading
#   the 570 MB PCH ~30 s. NO_PCH is for targets that link LibTorch but whose sources never include
#   it (the e2e tests), where loading the PCH would be all the cost. UNITY compiles the target's
#   sources in batches of 8 (CMake's unity build), which pays that fixed cost once per batch.
function(dino_target_defaults target)
  cmake_parse_arguments(ARG "NO_SANITIZE;NO_PCH;UNITY" "" "" ${ARGN})
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(ARG_UNITY)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
  endif()
  if(ARG_NO_SANITIZE)
    # -pthread everywhere (gRPC targets get it anyway): it defines _REENTRANT, and a PCH is only
    # used by translation units with the same macros.
    target_compile_options(${target} PRIVATE -pthread)
    # GCC 12 reports -Wmaybe-uninitialized inside LibTorch 2.x's own headers once they are inlined
    # into our code (e.g. the std::optional<std::vector<double>> of InterpolateFuncOptions): false
    # positives in code we do not own, so the LibTorch targets of a 2.x tree do not warn on it.
    if(Torch_VERSION VERSION_GREATER_EQUAL 2.0)
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
    if(TARGET dino_model AND NOT ARG_NO_PCH AND NOT target STREQUAL "dino_model"
       AND NOT target STREQUAL "dino_torch")
      target_precompile_headers(${target} REUSE_FROM dino_model)
    endif()
  endif()
  if(DINO_SANITIZE AND NOT ARG_NO_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# dino_test(NAME SOURCES... LIBS ... [LABELS ...] [NO_SANITIZE] [NO_PCH] [UNITY])
#   A GoogleTest executable whose cases are registered with ctest one by one.
function(dino_test name)
  cmake_parse_arguments(ARG "NO_SANITIZE;NO_PCH;UNITY" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  if(DINO_SANITIZE AND NOT ARG_NO_SANITIZE)
    target_sources(${name} PRIVATE ${DINO_SOURCE_ROOT}/tests/lsan_suppressions.cc)
  endif()
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  set(flags)
  foreach(flag NO_SANITIZE NO_PCH UNITY)
    if(ARG_${flag})
      list(APPEND flags ${flag})
    endif()
  endforeach()
  dino_target_defaults(${name} ${flags})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  # A GTEST_SKIP (the GPU tests without a device) is reported by ctest as "Skipped", not "Passed".
  # gtest_discover_tests cannot carry a list-valued property, so the labels are joined into one
  # word; ctest -L takes a regex, e.g. `ctest -L sanitizable` or `ctest -L e2e`.
  set(labels ${ARG_LABELS})
  if(NOT ARG_NO_SANITIZE)
    list(APPEND labels sanitizable)
  endif()
  list(JOIN labels "-" labels)
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${labels}"
               SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]"
               ENVIRONMENT "DINO_SOURCE_ROOT=${DINO_SOURCE_ROOT}"
    DISCOVERY_TIMEOUT 60)
endfunction()
