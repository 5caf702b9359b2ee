# -DSEGNODE_FUZZ=ON builds the libFuzzer targets of tests/fuzz (docs/testing.md, scripts/fuzz.sh).
# Every project library is compiled with the fuzzer's coverage instrumentation and ASan/UBSan;
# only the fuzz targets link libFuzzer's main (-fsanitize=fuzzer, see tests/fuzz/CMakeLists.txt).
# Without the option, tests/fuzz builds the same targets with a plain replay main instead, so
# ctest replays the committed seeds and regression inputs in the ordinary build.
option(SEGNODE_FUZZ "Build the libFuzzer targets (needs clang: CMAKE_CXX_COMPILER=clang++)" OFF)
if(SEGNODE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SEGNODE_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++), "
                        "not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  if(SEGNODE_SANITIZE)
    message(FATAL_ERROR "SEGNODE_FUZZ enables address,undefined itself; leave SEGNODE_SANITIZE empty")
  endif()
  message(STATUS "segnode: libFuzzer targets with address,undefined")
  # UBSan findings abort (a crash libFuzzer saves) instead of printing and going on.
  add_compile_options(
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link,address,undefined>
    $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=undefined>
    $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=address,undefined)
endif()
