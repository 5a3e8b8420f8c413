# The include half of the layering check (cmake/Layering.cmake has the table and the link half).
#
#   cmake -DDINO_SOURCE_ROOT=<source root> -P cmake/CheckIncludeLayers.cmake
#
# Reads every C/C++ source and header of the layered directories and checks each #include of a
# project header ("worker/dino/x.h", "server/y.h", "dino/v1/job.pb.h", ...) against the layers the
# including file's directory may use. Third-party headers (absl, torch, grpc, ...) belong to no
# layer and are not checked. Exits non-zero, listing every offending line, when an include crosses
# the layers outside the table's exceptions, or when an exception is no longer needed.
cmake_minimum_required(VERSION 3.18)

if(NOT DINO_SOURCE_ROOT)
  message(FATAL_ERROR "usage: cmake -DDINO_SOURCE_ROOT=<source root> -P CheckIncludeLayers.cmake")
endif()
include("${CMAKE_CURRENT_LIST_DIR}/Layering.cmake")

set(roots "")
foreach(layer IN LISTS DINO_LAYERS)
  foreach(dir IN LISTS DINO_LAYER_DIRS_${layer})
    if(IS_DIRECTORY "${DINO_SOURCE_ROOT}/${dir}")
      list(APPEND roots "${dir}")
    endif()
  endforeach()
endforeach()

set(files "")
foreach(root IN LISTS roots)
  foreach(ext h hpp hh c cc cpp cxx)
    file(GLOB_RECURSE found RELATIVE "${DINO_SOURCE_ROOT}" "${DINO_SOURCE_ROOT}/${root}/*.${ext}")
    list(APPEND files ${found})
  endforeach()
endforeach()
list(REMOVE_DUPLICATES files)
list(SORT files)

set(violations "")
set(used_exceptions "")
set(checked 0)
foreach(file IN LISTS files)
  get_filename_component(dir "${file}" DIRECTORY)
  dino_layer_of("${dir}" from_layer)
  if(from_layer STREQUAL "")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  file(STRINGS "${DINO_SOURCE_ROOT}/${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*[\"<]([^\">]+)[\">]")
      continue()
    endif()
    set(header "${CMAKE_MATCH_1}")
    dino_layer_of("${header}" to_layer)
    if(to_layer STREQUAL "")
      continue()
    endif()
    dino_layer_may_use(${from_layer} ${to_layer} allowed)
    if(allowed)
      continue()
    endif()
    if("${file}->${header}" IN_LIST DINO_LAYERING_INCLUDE_EXCEPTIONS)
      list(APPEND used_exceptions "${file}->${header}")
      continue()
    endif()
    list(APPEND violations "${file} (${from_layer}) includes ${header} (${to_layer})")
  endforeach()
endforeach()

foreach(exception IN LISTS DINO_LAYERING_INCLUDE_EXCEPTIONS)
  if(NOT exception IN_LIST used_exceptions)
    list(APPEND violations
         "the exception ${exception} is no longer needed: remove it from cmake/Layering.cmake")
  endif()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "Layering: no source files found under ${DINO_SOURCE_ROOT}")
endif()
if(violations)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "Layering: includes that cross the layers (the table is in "
                      "cmake/Layering.cmake, the rules in docs/design.md):\n  ${text}")
endif()
message(STATUS "Layering: the includes of ${checked} files respect the layers")
