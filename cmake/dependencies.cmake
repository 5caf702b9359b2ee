# All dependencies come from Debian 12 packages (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto SSL)
find_package(nlohmann_json 3 REQUIRED)
find_package(DCMTK REQUIRED CONFIG)
find_package(Boost 1.74 REQUIRED) # header-only: Asio for the job runner
# JPEG 2000 decoding in the series loader (DCMTK 3.6.7 has no JPEG 2000 codec): libopenjp2-7-dev.
find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENJPEG REQUIRED IMPORTED_TARGET libopenjp2>=2.3)

# DCMTK's exported targets carry no include directories on Debian; wrap them once here.
add_library(segnode_dcmtk INTERFACE)
target_link_libraries(segnode_dcmtk INTERFACE
  DCMTK::dcmnet DCMTK::dcmdata DCMTK::dcmjpeg DCMTK::dcmjpls DCMTK::dcmimgle DCMTK::oflog DCMTK::ofstd)
target_include_directories(segnode_dcmtk SYSTEM INTERFACE ${DCMTK_INCLUDE_DIRS})
