# dino_hide_torch_protobuf(): keeps a pip LibTorch's bundled protobuf headers out of the build.
#
# The `torch` wheel ships protobuf 3.13's headers in torch/include/google/, and its imported
# targets put torch/include on every consumer's include path ahead of /usr/include. A translation
# unit that includes both LibTorch and the service's generated *.pb.h (the worker agent) would then
# compile against protobuf 3.13 while linking Debian's 3.21. This points the imported targets at
# build/torch-include instead: links to every entry of torch/include except google/. LibTorch's
# own headers never include protobuf, so nothing else changes. Debian's LibTorch (1.13) has no
# such folder of its own (its include/ is /usr/include) and is left as it is.
function(dino_hide_torch_protobuf)
  get_filename_component(torch_include "${TORCH_INSTALL_PREFIX}/include" REALPATH)
  # Debian's LibTorch lives in /usr/include, where google/ is the system's own protobuf.
  if(NOT EXISTS "${torch_include}/google/protobuf"
     OR torch_include IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    return()
  endif()
  set(shadow "${CMAKE_BINARY_DIR}/torch-include")
  file(REMOVE_RECURSE "${shadow}")
  file(MAKE_DIRECTORY "${shadow}")
  file(GLOB entries RELATIVE "${torch_include}" "${torch_include}/*")
  foreach(entry IN LISTS entries)
    if(NOT entry STREQUAL "google")
      file(CREATE_LINK "${torch_include}/${entry}" "${shadow}/${entry}" SYMBOLIC)
    endif()
  endforeach()
  foreach(target IN ITEMS torch torch_cpu torch_cuda c10 c10_cuda headeronly torch_library
                          torch_cpu_library torch_cuda_library)
    if(NOT TARGET ${target})
      continue()
    endif()
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(mapped)
    foreach(dir IN LISTS dirs)
      if(NOT dir MATCHES "^\\$<" AND EXISTS "${dir}")
        get_filename_component(real "${dir}" REALPATH)
        string(FIND "${real}" "${torch_include}" at)
        if(at EQUAL 0)
          string(REPLACE "${torch_include}" "${shadow}" dir "${real}")
        endif()
      endif()
      list(APPEND mapped "${dir}")
    endforeach()
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${mapped}")
  endforeach()
  message(STATUS "LibTorch's bundled protobuf headers hidden: torch/include is read through ${shadow}")
endfunction()
