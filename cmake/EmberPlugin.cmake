# EmberPlugin.cmake — build ember plugins and layers (DESIGN.md §5, §9).
#
# Installed with ember and included by emberConfig.cmake, so a user's project does
#
#   find_package(ember REQUIRED)
#   ember_add_plugin(matchmaker SOURCES matchmaker.cpp LAYERS geo)   # -> libmatchmaker.so
#   ember_add_layer(geo SOURCES geo.cpp)                              # -> libgeo.so
#
# Each call makes a MODULE library that links nothing of ember (only the header-only
# ember::plugin_sdk), is built with hidden visibility and, on GCC, -fno-gnu-unique (else glibc
# may never unload it), and exports only the entry symbols through a linker version script.
# `-z defs` proves at link time that the object needs nothing from the host.
#
# Variables read:
#   EMBER_PLUGIN_OUTPUT_DIR        where lib<name>.so goes (default: CMake's usual place).
#   EMBER_SANITIZE                 when set, `-z defs` is dropped: sanitizer runtimes leave
#                                  symbols undefined in shared objects on purpose.
#   EMBER_PLUGIN_SDK_INCLUDE_DIR   only without an ember::plugin_sdk target (a standalone build
#                                  against an ember source tree): the directory holding
#                                  ember/plugin.h; ember::plugin_sdk is then made from it.
#
# This file must not refer to ember's source tree: it runs from the installed package too.

include_guard(GLOBAL)

if(NOT TARGET ember::plugin_sdk AND DEFINED EMBER_PLUGIN_SDK_INCLUDE_DIR)
  if(NOT TARGET tl::expected)
    find_package(tl-expected REQUIRED)
  endif()
  add_library(ember::plugin_sdk INTERFACE IMPORTED)
  set_target_properties(ember::plugin_sdk PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${EMBER_PLUGIN_SDK_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES tl::expected
    INTERFACE_COMPILE_FEATURES cxx_std_17)
endif()

# The version script every plugin and layer links with: the two entry symbols, nothing else.
function(_ember_plugin_version_script out_var)
  set(script "${CMAKE_BINARY_DIR}/CMakeFiles/ember_plugin_exports.map")
  # file(CONFIGURE) rewrites the file only when its content changes: no needless relinks.
  file(CONFIGURE OUTPUT "${script}"
    CONTENT "{ global: ember_plugin_entry_v1; ember_layer_entry_v1; local: *; };\n")
  set(${out_var} "${script}" PARENT_SCOPE)
endfunction()

# The MODULE library behind ember_add_plugin and ember_add_layer.
function(_ember_add_module name kind)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "SOURCES;LAYERS")
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "${kind}(${name}): SOURCES is required")
  endif()
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${kind}(${name}): unknown arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ember::plugin_sdk)
    message(FATAL_ERROR "${kind}(${name}): no ember::plugin_sdk target; find_package(ember) "
      "first, or set EMBER_PLUGIN_SDK_INCLUDE_DIR before including EmberPlugin.cmake")
  endif()

  add_library(${name} MODULE ${arg_SOURCES})
  target_link_libraries(${name} PRIVATE ember::plugin_sdk)
  set_target_properties(${name} PROPERTIES
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  # A GNU-unique symbol (a template's static, an inline function's static) makes glibc keep
  # the object loaded forever; clang never emits them and does not know the flag.
  target_compile_options(${name} PRIVATE
    $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-fno-gnu-unique>
    $<$<COMPILE_LANG_AND_ID:C,GNU>:-fno-gnu-unique>)

  _ember_plugin_version_script(script)
  target_link_options(${name} PRIVATE
    "LINKER:--version-script=${script}"
    # Symbols of static libraries linked in stay local too.
    "LINKER:--exclude-libs,ALL")
  if(NOT EMBER_SANITIZE)
    target_link_options(${name} PRIVATE "LINKER:-z,defs")
  endif()
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS "${script}")

  if(DEFINED EMBER_PLUGIN_OUTPUT_DIR AND NOT EMBER_PLUGIN_OUTPUT_DIR STREQUAL "")
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${EMBER_PLUGIN_OUTPUT_DIR}")
  endif()

  # A layer's service header lives beside its sources; the host loads the layer itself, so
  # its users only need it built first, never linked.
  foreach(layer IN LISTS arg_LAYERS)
    add_dependencies(${name} ${layer})
    target_include_directories(${name} PRIVATE $<TARGET_PROPERTY:${layer},SOURCE_DIR>)
  endforeach()
endfunction()

# ember_add_plugin(<name> SOURCES <files...> [LAYERS <layer targets...>]) -> lib<name>.so
# C and C++ sources both work. LAYERS: layer targets (ember_add_layer) whose service headers
# the plugin includes; they are built first and put on the include path, not linked.
function(ember_add_plugin name)
  _ember_add_module(${name} ember_add_plugin ${ARGN})
endfunction()

# ember_add_layer(<name> SOURCES <files...>) -> lib<name>.so, a layer exporting
# ember_layer_entry_v1. Put the header declaring its service vtables beside its sources.
function(ember_add_layer name)
  if("LAYERS" IN_LIST ARGN)
    message(FATAL_ERROR "ember_add_layer(${name}): a layer cannot require layers")
  endif()
  _ember_add_module(${name} ember_add_layer ${ARGN})
endfunction()
