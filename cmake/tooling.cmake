# `cmake --build build --target format` / `tidy`: developer conveniences, not part of `all`.
file(GLOB_RECURSE SEGNODE_ALL_SOURCES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/src/*.cpp ${PROJECT_SOURCE_DIR}/include/*.hpp
  ${PROJECT_SOURCE_DIR}/tests/*.cpp ${PROJECT_SOURCE_DIR}/tests/*.hpp ${PROJECT_SOURCE_DIR}/bench/*.cpp)
find_program(CLANG_FORMAT_EXE NAMES clang-format clang-format-14)
if(CLANG_FORMAT_EXE)
  add_custom_target(format COMMAND ${CLANG_FORMAT_EXE} -i ${SEGNODE_ALL_SOURCES}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} COMMENT "clang-format")
  add_custom_target(format-check COMMAND ${CLANG_FORMAT_EXE} --dry-run --Werror ${SEGNODE_ALL_SOURCES}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} COMMENT "clang-format check")
endif()
find_program(CLANG_TIDY_EXE NAMES clang-tidy clang-tidy-14)
if(CLANG_TIDY_EXE)
  file(GLOB_RECURSE SEGNODE_TIDY_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*.cpp)
  add_custom_target(tidy COMMAND ${CLANG_TIDY_EXE} -p ${PROJECT_BINARY_DIR} ${SEGNODE_TIDY_SOURCES}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} COMMENT "clang-tidy")
endif()
