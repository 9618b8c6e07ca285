# `make uninstall`: removes what the last `make install` from this build tree
# put in place, as listed in its install_manifest.txt, under the same
# DESTDIR. The configuration and the logrotate snippet are not in the
# manifest (cmake/install_config.cmake installs them only when absent) and
# stay, as an administrator's files do when a Debian package is removed;
# the message names them for a purge by hand.
#
#   DESTDIR=... cmake -DMANIFEST=build/install_manifest.txt -P cmake/uninstall.cmake

if(NOT MANIFEST)
  message(FATAL_ERROR "uninstall: MANIFEST is not set (-DMANIFEST=<build dir>/install_manifest.txt)")
endif()
if(NOT EXISTS "${MANIFEST}")
  message(FATAL_ERROR "uninstall: ${MANIFEST} does not exist: nothing was installed from this build tree")
endif()

file(STRINGS "${MANIFEST}" installed)
set(removed 0)
set(prefix "")
set(dirs "")
foreach(file IN LISTS installed)
  set(path "$ENV{DESTDIR}${file}")
  if(EXISTS "${path}" OR IS_SYMLINK "${path}")
    file(REMOVE "${path}")
    if(EXISTS "${path}")
      message(FATAL_ERROR "uninstall: could not remove ${path}")
    endif()
    message(STATUS "Removed: ${path}")
    math(EXPR removed "${removed} + 1")
  endif()
  get_filename_component(dir "${file}" DIRECTORY)
  list(APPEND dirs "${dir}")
  if(file MATCHES "^(.*)/bin/tcpfork$")
    set(prefix "${CMAKE_MATCH_1}")
  endif()
endforeach()

# Directories of our own (share/doc/tcpfork and below) go once empty; shared
# ones such as bin/ or man/man8 stay whatever they hold. Matched on the
# installed path, so a DESTDIR named tcpfork is never walked up into.
list(REMOVE_DUPLICATES dirs)
list(SORT dirs ORDER DESCENDING)  # children before their parents
foreach(dir IN LISTS dirs)
  while(dir MATCHES "/tcpfork(/|$)")
    set(path "$ENV{DESTDIR}${dir}")
    file(GLOB left LIST_DIRECTORIES true "${path}/*" "${path}/.*")
    if(left OR NOT IS_DIRECTORY "${path}")
      break()
    endif()
    file(REMOVE_RECURSE "${path}")
    message(STATUS "Removed: ${path}/")
    get_filename_component(dir "${dir}" DIRECTORY)
  endwhile()
endforeach()

# Where cmake/install_config.cmake put the administrator's files.
if(prefix STREQUAL "/usr" OR prefix STREQUAL "")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${prefix}/etc")
endif()
message(STATUS "Uninstalled ${removed} file(s). Kept, if present: $ENV{DESTDIR}${sysconfdir}/tcpfork/tcpfork.yaml "
               "and $ENV{DESTDIR}${sysconfdir}/logrotate.d/tcpfork (remove them by hand to purge)")
