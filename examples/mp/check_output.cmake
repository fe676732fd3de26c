# Runs PROGRAM and compares its standard output with EXPECTED, line by line; with
# SORTED=1 the order is ignored (the Python original's output is racy there too).
#   cmake -DPROGRAM=... -DEXPECTED=... [-DSORTED=1] -P check_output.cmake
execute_process(COMMAND ${PROGRAM} OUTPUT_VARIABLE out RESULT_VARIABLE rc TIMEOUT 60)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}; output:\n${out}")
endif()
file(READ ${EXPECTED} want)
string(REPLACE "\n" ";" got_lines "${out}")
string(REPLACE "\n" ";" want_lines "${want}")
if(SORTED)
  list(SORT got_lines)
  list(SORT want_lines)
endif()
if(NOT got_lines STREQUAL want_lines)
  message(FATAL_ERROR "${PROGRAM} printed:\n${out}\nexpected:\n${want}")
endif()
