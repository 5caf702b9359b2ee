# Strict warnings for project targets only (third-party headers are included as SYSTEM).
add_library(segnode_warnings INTERFACE)
target_compile_options(segnode_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(SEGNODE_WERROR)
  target_compile_options(segnode_warnings INTERFACE -Werror)
endif()
