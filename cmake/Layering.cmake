# The layers of the source tree and which layers each one may depend on (docs/design.md,
# "Directories and layers"). One table serves two checks:
#   - dino_check_link_layers(): at configure time, every library and executable defined in the
#     tree against the project libraries it links (LINK_LIBRARIES and INTERFACE_LINK_LIBRARIES);
#     a link to a layer that is not allowed stops the configuration.
#   - cmake/CheckIncludeLayers.cmake (the ctest test layering_includes): every #include of a
#     project header in the sources, against the same table.
# This file is also read in script mode (cmake -P), so it defines variables and functions only.
#
# A target's layer is the one of the directory whose CMakeLists.txt defines it (its SOURCE_DIR); a
# file's layer is the one of its directory; the longest matching prefix wins. A directory that no
# layer names is an error, so a new top-level directory has to be placed in the table.

# layer name -> the directories (relative to the source root) that belong to it.
set(DINO_LAYERS common defaults proto spec core run agent server client top)
set(DINO_LAYER_DIRS_common common)
# The job spec's table of defaults and presets: plain C++ (no protobuf), read by the DINO core so
# that its structs start from the spec's defaults.
set(DINO_LAYER_DIRS_defaults spec/defaults.h)
set(DINO_LAYER_DIRS_proto proto dino/v1)  # dino/v1/*.pb.h: the headers generated from proto/.
set(DINO_LAYER_DIRS_spec spec)            # dino_spec: reader, defaults and checks of a job spec.
set(DINO_LAYER_DIRS_core worker worker/dino worker/data worker/dist)
set(DINO_LAYER_DIRS_run worker/run)
set(DINO_LAYER_DIRS_agent worker/agent)
set(DINO_LAYER_DIRS_server server)
set(DINO_LAYER_DIRS_client client)
set(DINO_LAYER_DIRS_top tests bench examples scripts deploy)

# layer name -> the layers it may link and include (itself included). The DINO core and the run
# stay free of the service (no proto, no spec beyond its table of defaults); server and client never use each other or the
# worker; tests and benchmarks may use everything.
set(DINO_LAYER_MAY_USE_common common)
set(DINO_LAYER_MAY_USE_defaults defaults)
set(DINO_LAYER_MAY_USE_proto proto common)
set(DINO_LAYER_MAY_USE_spec spec defaults proto common)
set(DINO_LAYER_MAY_USE_core core defaults common)
set(DINO_LAYER_MAY_USE_run run core defaults common)
set(DINO_LAYER_MAY_USE_agent agent run core spec defaults proto common)
set(DINO_LAYER_MAY_USE_server server spec defaults proto common)
set(DINO_LAYER_MAY_USE_client client spec defaults proto common)
set(DINO_LAYER_MAY_USE_top ${DINO_LAYERS})

# Exceptions, as "from->to" with target names (links) or source-root-relative paths (includes).
#
# By design: the client's export command writes the teacher backbone with the DINO core's
# export code. It is a library and a binary of its own so that plain dinoctl never loads LibTorch.
set(DINO_LAYERING_LINK_EXCEPTIONS
  "dinoctl_export->dino_model")
# dino_spec_defaults is the header-only target of spec/defaults.h (the `defaults` layer above); a
# target's layer comes from its directory, spec/, so its users in the core are listed here.
list(APPEND DINO_LAYERING_LINK_EXCEPTIONS
  "dino_model->dino_spec_defaults"
  "dino_data->dino_spec_defaults")
set(DINO_LAYERING_INCLUDE_EXCEPTIONS
  "client/export_command.cc->worker/dino/export.h")

# dino_layer_of(<path relative to the source root> <out-var>): the layer of a directory or file,
# or "" when no layer claims it (an include of a third-party header, for instance).
function(dino_layer_of path out)
  set(best_layer "")
  set(best_length 0)
  foreach(layer IN LISTS DINO_LAYERS)
    foreach(dir IN LISTS DINO_LAYER_DIRS_${layer})
      string(LENGTH "${dir}" length)
      if((path STREQUAL dir OR path MATCHES "^${dir}/") AND length GREATER best_length)
        set(best_layer ${layer})
        set(best_length ${length})
      endif()
    endforeach()
  endforeach()
  set(${out} "${best_layer}" PARENT_SCOPE)
endfunction()

# dino_layer_may_use(<from-layer> <to-layer> <out-var>): TRUE or FALSE.
function(dino_layer_may_use from to out)
  if(to IN_LIST DINO_LAYER_MAY_USE_${from})
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

# The targets (libraries and executables) defined in `dir` and below.
function(dino_collect_targets dir out)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    dino_collect_targets("${sub}" sub_targets)
    list(APPEND targets ${sub_targets})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# Checks every target of the tree against the table; call at the end of the top CMakeLists.txt,
# once every directory has been added. Targets that a configuration leaves out (worker/ in a
# sanitizer build, spec/ before it exists) are simply not there to check.
function(dino_check_link_layers)
  dino_collect_targets("${CMAKE_SOURCE_DIR}" targets)
  set(violations "")
  set(used_exceptions "")
  set(checked_types STATIC_LIBRARY SHARED_LIBRARY MODULE_LIBRARY OBJECT_LIBRARY INTERFACE_LIBRARY
                    EXECUTABLE)  # Not the custom targets (protoc outputs, Python stubs).
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(NOT type IN_LIST checked_types)
      continue()
    endif()
    get_target_property(source_dir ${target} SOURCE_DIR)
    file(RELATIVE_PATH rel "${CMAKE_SOURCE_DIR}" "${source_dir}")
    dino_layer_of("${rel}" from_layer)
    if(from_layer STREQUAL "")
      list(APPEND violations
           "${target} (defined in ${rel}/): its directory is in no layer of cmake/Layering.cmake")
      continue()
    endif()
    set(links "")
    if(NOT type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(direct ${target} LINK_LIBRARIES)
      if(direct)
        list(APPEND links ${direct})
      endif()
    endif()
    get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
    if(interface)
      list(APPEND links ${interface})
    endif()
    # A static library's private links appear in its interface as $<LINK_ONLY:name>.
    list(TRANSFORM links REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1")
    list(REMOVE_DUPLICATES links)
    foreach(item IN LISTS links)
      if(NOT TARGET "${item}")
        continue()  # A plain library file or flag (-ldl, a civetweb path): not ours.
      endif()
      get_target_property(aliased "${item}" ALIASED_TARGET)
      if(aliased)
        set(item "${aliased}")
      endif()
      get_target_property(imported "${item}" IMPORTED)
      if(imported)
        continue()  # abseil, gRPC, LibTorch, ...: outside the layers.
      endif()
      get_target_property(to_dir "${item}" SOURCE_DIR)
      file(RELATIVE_PATH to_rel "${CMAKE_SOURCE_DIR}" "${to_dir}")
      dino_layer_of("${to_rel}" to_layer)
      if(to_layer STREQUAL "")
        continue()  # Reported as an unplaced target on its own.
      endif()
      dino_layer_may_use(${from_layer} ${to_layer} allowed)
      if(allowed)
        continue()
      endif()
      if("${target}->${item}" IN_LIST DINO_LAYERING_LINK_EXCEPTIONS)
        list(APPEND used_exceptions "${target}->${item}")
        continue()
      endif()
      list(APPEND violations
           "${target} (${from_layer}, ${rel}/) links ${item} (${to_layer}, ${to_rel}/)")
    endforeach()
  endforeach()
  foreach(exception IN LISTS DINO_LAYERING_LINK_EXCEPTIONS)
    string(REGEX REPLACE "->.*" "" exception_target "${exception}")
    if(TARGET "${exception_target}" AND NOT exception IN_LIST used_exceptions)
      message(AUTHOR_WARNING "cmake/Layering.cmake: the link exception ${exception} is no longer "
                             "needed; remove it")
    endif()
  endforeach()
  if(violations)
    list(JOIN violations "\n  " text)
    message(FATAL_ERROR "Layering: a target links a library of a layer it may not use "
                        "(the table is in cmake/Layering.cmake, the rules in docs/design.md):\n  "
                        "${text}")
  endif()
endfunction()
