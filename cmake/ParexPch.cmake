# parex_programs_pch(<target>...): the small programs of examples/ and test/programs/ share
# one precompiled <parex/parex.hpp>. Such a program is a few dozen lines; compiling it is
# mostly parsing parex's headers (and Boost's under them), ~1.7 of its ~2.4 s of CPU. The
# header is compiled once (~8 s) into the target parex_programs_pch, and every program
# reuses it (CMake's REUSE_FROM: same compiler flags required, which all these programs
# have: the directory's PAREX_CHECK_COMPILE_OPTIONS and parex::parex's usage requirements).
# The header comes in first (-include): a program must not #define anything that changes
# <parex/parex.hpp> before including it, nor be one that must not see all of parex
# (test/programs/thread_only.cpp checks that <parex/thread_pool.hpp> stands alone: no PCH).
#
# ccache cannot cache a compile that reads a precompiled header (unless its sloppiness
# allows pch_defines), and a cache hit is cheaper than the PCH: with ccache as the compiler
# launcher, the programs are compiled without it. -DPAREX_PCH=OFF turns it off.
set(parex_pch_default ON)
if(CMAKE_CXX_COMPILER_LAUNCHER MATCHES "ccache")
  set(parex_pch_default OFF)
endif()
option(PAREX_PCH "One precompiled <parex/parex.hpp> for the programs of examples/ and test/programs/"
       ${parex_pch_default})

function(parex_programs_pch)
  if(NOT PAREX_PCH)
    return()
  endif()
  if(NOT TARGET parex_programs_pch)
    # Made in the directory of the first caller: test/ and examples/ have the same compile
    # options (add_compile_options(${PAREX_CHECK_COMPILE_OPTIONS})).
    file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/parex_programs_pch.cpp CONTENT "// owns the precompiled header\n")
    add_library(parex_programs_pch OBJECT ${CMAKE_CURRENT_BINARY_DIR}/parex_programs_pch.cpp)
    target_link_libraries(parex_programs_pch PRIVATE parex::parex)
    target_precompile_headers(parex_programs_pch PRIVATE <parex/parex.hpp>)
  endif()
  foreach(target ${ARGN})
    if(target STREQUAL "parex_programs_pch")
      continue()
    endif()
    target_precompile_headers(${target} REUSE_FROM parex_programs_pch)
  endforeach()
endfunction()
