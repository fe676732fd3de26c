# Compiles one file; passes if it fails to compile with the message its "// expect:"
# line gives (or compiles, for "// expect-success:").
file(STRINGS ${SOURCE} first LIMIT_COUNT 1)
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only ${flags} -I${INCLUDE_DIR} ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(first MATCHES "^// expect-success:")
  if(rc)
    message(FATAL_ERROR "expected to compile, but:\n${err}")
  endif()
  return()
endif()
string(REGEX REPLACE "^// expect: " "" expected "${first}")
if(NOT rc)
  message(FATAL_ERROR "compiled, but should fail with: ${expected}")
endif()
if(NOT err MATCHES "${expected}")
  message(FATAL_ERROR "failed, but without the expected message '${expected}':\n${err}")
endif()
