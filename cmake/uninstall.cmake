# `make uninstall`: removes what the last `make install` put in place. The
# Makefile's install target records, in <build>/installed.txt, the DESTDIR on
# the first line and then the build tree's install_manifest.txt (paths under
# that DESTDIR); a record of its own because every `cmake --install` from the
# build tree, the install tests' included, rewrites the manifest.
#
# The configuration and the logrotate snippet stay, as an administrator's
# files do when a Debian package is removed: cmake/install_config.cmake
# installs them from inside a function, whose scope drops them from the
# manifest, and only when absent; this script also skips them by name.
#
#   cmake -DINSTALLED=build/installed.txt -P cmake/uninstall.cmake

if(NOT INSTALLED)
  message(FATAL_ERROR "uninstall: INSTALLED is not set (-DINSTALLED=<build dir>/installed.txt)")
endif()
if(NOT EXISTS "${INSTALLED}")
  message(FATAL_ERROR "uninstall: ${INSTALLED} does not exist: nothing was installed with `make install` "
                      "from this build tree")
endif()

file(STRINGS "${INSTALLED}" lines ENCODING UTF-8)
list(POP_FRONT lines destdir_line)
if(NOT destdir_line MATCHES "^DESTDIR=(.*)$")
  message(FATAL_ERROR "uninstall: ${INSTALLED} does not start with a DESTDIR= line")
endif()
set(destdir "${CMAKE_MATCH_1}")

set(removed 0)
set(prefix "")
set(dirs "")
foreach(file IN LISTS lines)
  if(file MATCHES "/tcpfork/tcpfork\\.yaml$" AND NOT file MATCHES "/share/doc/")
    continue()  # the configuration
  endif()
  if(file MATCHES "/logrotate\\.d/tcpfork$")
    continue()
  endif()
  set(path "${destdir}${file}")
  if(EXISTS "${path}" OR IS_SYMLINK "${path}")
    file(REMOVE "${path}")
    if(EXISTS "${path}" OR IS_SYMLINK "${path}")
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
# installed path, so a DESTDIR named tcpfork is never walked up into; rmdir
# removes a directory only if it is empty, at the moment it runs.
list(REMOVE_DUPLICATES dirs)
list(SORT dirs ORDER DESCENDING)  # children before their parents
foreach(dir IN LISTS dirs)
  while(dir MATCHES "/tcpfork(/|$)")
    set(path "${destdir}${dir}")
    if(NOT IS_DIRECTORY "${path}")
      break()
    endif()
    execute_process(COMMAND rmdir -- "${path}" RESULT_VARIABLE failed ERROR_QUIET)
    if(failed)
      break()
    endif()
    message(STATUS "Removed: ${path}/")
    get_filename_component(dir "${dir}" DIRECTORY)
  endwhile()
endforeach()
file(REMOVE "${INSTALLED}")

# Where cmake/install_config.cmake put the administrator's files.
include("${CMAKE_CURRENT_LIST_DIR}/sysconfdir.cmake")
tcpfork_sysconfdir("${prefix}" sysconfdir)
message(STATUS "Uninstalled ${removed} file(s). Kept, if present: ${destdir}${sysconfdir}/tcpfork/tcpfork.yaml "
               "and ${destdir}${sysconfdir}/logrotate.d/tcpfork (remove them by hand to purge)")
