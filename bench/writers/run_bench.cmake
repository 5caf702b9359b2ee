# cmake -DPHANTOM=... -DBENCH=... -DSERIES=dir [-DWHAT=seg|rtstruct|both] [-DLABELS=N]
#       [-DDEFAULT_ROUNDS=N] -P run_bench.cmake
# Generates the 512 x 512 x 300 phantom series (no noise: the segment outlines are what the
# writers see) into SERIES unless a previous run completed it (SERIES.json, the phantom's
# output, is written last), then runs the benchmark. BENCH_ROUNDS in the environment sets the
# rounds (default DEFAULT_ROUNDS, else 5); LABELS > 3 benchmarks the synthetic many-label map.
foreach(var PHANTOM BENCH SERIES)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_bench.cmake: ${var} is not set")
  endif()
endforeach()
if(NOT DEFINED WHAT)
  set(WHAT both)
endif()
if(NOT DEFINED LABELS)
  set(LABELS 3)
endif()

if(NOT EXISTS "${SERIES}.json")
  message(STATUS "generating the phantom series in ${SERIES}")
  file(REMOVE_RECURSE "${SERIES}")
  execute_process(
    COMMAND "${PHANTOM}" --out "${SERIES}" --rows 512 --cols 512 --slices 300
    OUTPUT_FILE "${SERIES}.json.tmp"
    COMMAND_ERROR_IS_FATAL ANY)
  file(RENAME "${SERIES}.json.tmp" "${SERIES}.json")
endif()

set(_rounds 5)
if(DEFINED DEFAULT_ROUNDS)
  set(_rounds "${DEFAULT_ROUNDS}")
endif()
if(DEFINED ENV{BENCH_ROUNDS})
  set(_rounds "$ENV{BENCH_ROUNDS}")
endif()
execute_process(COMMAND "${BENCH}" --series "${SERIES}" --rounds "${_rounds}" --what "${WHAT}"
                        --labels "${LABELS}" --out "${CMAKE_CURRENT_BINARY_DIR}"
                RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  if(_rc EQUAL 3)
    message(FATAL_ERROR "bench-writers: a target was missed (see above)")
  endif()
  message(FATAL_ERROR "bench-writers failed (${_rc})")
endif()
