# lotus_add_module(<target> <sources...>)
#
# Builds a LOTUS native module as a shared library a manifest can name in
# `runtime.library`. Include this file from a module's own CMake project:
#
#   cmake_minimum_required(VERSION 3.25)
#   project(my_module CXX)
#   include(/path/to/lotus/cmake/lotus_module.cmake)
#   lotus_add_module(my_module my_module.cc)
#
# The plugin sees only include/lotus (plus nlohmann-json and absl status); it
# must be built with the same compiler as lotus, which the ABI stamp checks.
get_filename_component(LOTUS_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

find_package(nlohmann_json 3.10 REQUIRED)
find_package(absl REQUIRED)

function(lotus_add_module target)
  add_library(${target} SHARED ${ARGN})
  set_target_properties(${target} PROPERTIES
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    CXX_EXTENSIONS OFF
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Without this, GCC marks inline statics STB_GNU_UNIQUE: glibc then binds
  # them across plugins and never unloads the library, so a reloaded
  # plugin could run code of an older copy.
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  target_include_directories(${target} PRIVATE ${LOTUS_ROOT}/include)
  target_link_libraries(${target} PRIVATE nlohmann_json::nlohmann_json absl::status absl::statusor)
endfunction()
