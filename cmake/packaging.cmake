# Installation layout and the Debian package: `cpack -G DEB` in the build directory (or
# `cmake --build build --target package-deb`) gives segnode_<version>_<arch>.deb.
#   /usr/bin/segnode                      the binary (stripped)
#   /etc/segnode/segnode.toml             the commented sample config (a conffile), with the
#                                         working directory set to /var/lib/segnode
#   /lib/systemd/system/segnode.service   the hardened Type=notify unit
#   /usr/share/doc/segnode/               README, docs, copyright, changelog
# postinst makes the segnode system user and /var/lib/segnode (cmake/debian/).
set(SEGNODE_DEB_DIR ${PROJECT_SOURCE_DIR}/cmake/debian)

install(TARGETS segnode RUNTIME DESTINATION bin)

# The packaged config differs from the sample in one value: where the data lives.
file(READ ${PROJECT_SOURCE_DIR}/config/segnode.toml _segnode_sample)
string(REPLACE "workdir = \"./var\"" "workdir = \"/var/lib/segnode\"" _segnode_packaged
               "${_segnode_sample}")
if(_segnode_packaged STREQUAL _segnode_sample)
  message(FATAL_ERROR "packaging: config/segnode.toml no longer has workdir = \"./var\"")
endif()
file(WRITE ${PROJECT_BINARY_DIR}/package/segnode.toml "${_segnode_packaged}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/config/segnode.toml)
install(FILES ${PROJECT_BINARY_DIR}/package/segnode.toml DESTINATION /etc/segnode
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/segnode.service DESTINATION /lib/systemd/system
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Documentation; a native package keeps a gzip'd changelog (gzip -n: reproducible).
set(_segnode_docdir share/doc/segnode)
file(GLOB _segnode_docs ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${_segnode_docs}
              ${PROJECT_SOURCE_DIR}/docs/openapi.yaml ${SEGNODE_DEB_DIR}/copyright
        DESTINATION ${_segnode_docdir}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
find_program(GZIP_EXE gzip REQUIRED)
add_custom_command(
  OUTPUT ${PROJECT_BINARY_DIR}/package/changelog.gz
  COMMAND ${GZIP_EXE} -9nc ${SEGNODE_DEB_DIR}/changelog > ${PROJECT_BINARY_DIR}/package/changelog.gz
  DEPENDS ${SEGNODE_DEB_DIR}/changelog
  VERBATIM)
add_custom_target(segnode-changelog ALL DEPENDS ${PROJECT_BINARY_DIR}/package/changelog.gz)
install(FILES ${PROJECT_BINARY_DIR}/package/changelog.gz DESTINATION ${_segnode_docdir}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# A manual page from `segnode --help` (help2man), when help2man is installed.
find_program(HELP2MAN_EXE help2man)
if(HELP2MAN_EXE)
  set(_segnode_man ${PROJECT_BINARY_DIR}/package/segnode.1)
  add_custom_command(
    OUTPUT ${_segnode_man}.gz
    COMMAND ${HELP2MAN_EXE} --no-info --output=${_segnode_man}
            "--name=DICOM network node that segments what it receives" $<TARGET_FILE:segnode>
    COMMAND ${GZIP_EXE} -9nf ${_segnode_man}
    DEPENDS segnode
    VERBATIM)
  add_custom_target(segnode-manpage DEPENDS ${_segnode_man}.gz)
  install(FILES ${_segnode_man}.gz DESTINATION share/man/man1 OPTIONAL
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME segnode)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(SEGNODE_DEB_MAINTAINER "segnode maintainers <segnode@example.org>"
    CACHE STRING "Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT "${SEGNODE_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "DICOM network node that segments what it receives")
set(CPACK_PACKAGE_DESCRIPTION
    "segnode receives DICOM series over C-STORE, stores them durably, decides
when a series is complete, runs built-in or external segmentation algorithms
chosen by rules, and sends the results back as DICOM SEG and RTSTRUCT.
An HTTP API with API keys and an admin CLI manage it.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${SEGNODE_DEB_DIR}/conffiles ${SEGNODE_DEB_DIR}/postinst ${SEGNODE_DEB_DIR}/prerm
    ${SEGNODE_DEB_DIR}/postrm)
# /etc/segnode and /lib/systemd/system are absolute on purpose (Debian's layout).
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)
include(CPack)

add_custom_target(package-deb
  COMMAND ${CMAKE_CPACK_COMMAND} -G DEB --config ${PROJECT_BINARY_DIR}/CPackConfig.cmake
  WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
  DEPENDS segnode segnode-changelog $<$<BOOL:${HELP2MAN_EXE}>:segnode-manpage>
  COMMENT "Building the Debian package"
  VERBATIM)
