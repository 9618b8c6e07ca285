# Install-time part of `make install`: the configuration, the logrotate
# snippet and the systemd service, which name installed paths. Their directory depends on the prefix, which `cmake --install
# --prefix` sets only now, so it is resolved here rather than at configure
# time: /etc for the /usr prefix (Debian's and the GNU standards' convention),
# <prefix>/etc otherwise (/usr/local/etc). DESTDIR applies as usual.
#
# Both are files an administrator edits, so an existing one is kept: a
# reinstall or upgrade never overwrites it (the example stays up to date in
# the doc directory).
#
# Expects TCPFORK_SOURCE_DIR, TCPFORK_BINARY_DIR, TCPFORK_BINDIR,
# TCPFORK_INCLUDEDIR and TCPFORK_VERSION (set by cmake/install.cmake).

include("${CMAKE_CURRENT_LIST_DIR}/sysconfdir.cmake")
string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
tcpfork_sysconfdir("${prefix}" sysconfdir)
if(IS_ABSOLUTE "${TCPFORK_BINDIR}")
  set(bindir "${TCPFORK_BINDIR}")
else()
  set(bindir "${prefix}/${TCPFORK_BINDIR}")
endif()

# Installs `file` into `dir` (absolute) unless a file of that name is there.
function(tcpfork_install_config file dir)
  get_filename_component(name "${file}" NAME)
  if(EXISTS "$ENV{DESTDIR}${dir}/${name}")
    message(STATUS "Keeping existing: $ENV{DESTDIR}${dir}/${name}")
  else()
    file(INSTALL DESTINATION "${dir}" TYPE FILE FILES "${file}")
  endif()
endfunction()

# The installed config is the systemd unit's, whose /tmp is private to it
# (PrivateTmp): its profiles go to the unit's state directory instead, where
# the operator's google-pprof finds them. The example keeps the default.
file(READ "${TCPFORK_SOURCE_DIR}/deploy/tcpfork.yaml" config)
set(default_profile_dir "  # dir: /tmp/tcpfork_profile\n")
string(FIND "${config}" "${default_profile_dir}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "deploy/tcpfork.yaml no longer has the line '# dir: /tmp/tcpfork_profile' under profile:")
endif()
string(REPLACE "${default_profile_dir}" "  dir: /var/lib/tcpfork/profiles\n" config "${config}")
string(RANDOM LENGTH 12 scratch)
set(scratch "${TCPFORK_BINARY_DIR}/install-${scratch}")
file(WRITE "${scratch}/tcpfork.yaml" "${config}")
tcpfork_install_config("${scratch}/tcpfork.yaml" "${sysconfdir}/tcpfork")
file(REMOVE_RECURSE "${scratch}")

# The snippet names the binary and the config as installed under /usr; point
# it at where this install puts them.
file(READ "${TCPFORK_SOURCE_DIR}/deploy/logrotate/tcpfork" snippet)
string(REPLACE "/usr/bin/tcpfork " "${bindir}/tcpfork " snippet "${snippet}")
string(REPLACE "/etc/tcpfork/" "${sysconfdir}/tcpfork/" snippet "${snippet}")
# A directory of its own, so that two installs at once do not share the file.
string(RANDOM LENGTH 12 scratch)
set(scratch "${TCPFORK_BINARY_DIR}/install-${scratch}")
file(WRITE "${scratch}/tcpfork" "${snippet}")
tcpfork_install_config("${scratch}/tcpfork" "${sysconfdir}/logrotate.d")
file(REMOVE_RECURSE "${scratch}")

# The service names the binary and the config as installed under /usr/local.
# Units are not edited in place (drop-ins are), so this one is replaced.
file(READ "${TCPFORK_SOURCE_DIR}/deploy/systemd/tcpfork.service" unit)
string(REPLACE "/usr/local/bin/tcpfork " "${bindir}/tcpfork " unit "${unit}")
string(REPLACE "/usr/local/etc/tcpfork/" "${sysconfdir}/tcpfork/" unit "${unit}")
file(WRITE "${TCPFORK_BINARY_DIR}/install-unit/tcpfork.service" "${unit}")
file(INSTALL DESTINATION "${prefix}/lib/systemd/system" TYPE FILE
     FILES "${TCPFORK_BINARY_DIR}/install-unit/tcpfork.service")
file(REMOVE_RECURSE "${TCPFORK_BINARY_DIR}/install-unit")

# pkg-config's file for handler modules names the header's installed
# directory, so it is written for the prefix too. The header is all a module
# needs (no library to link), so the file is architecture-independent and
# goes to share/pkgconfig, on pkg-config's default path for /usr and /usr/local.
if(IS_ABSOLUTE "${TCPFORK_INCLUDEDIR}")
  set(includedir "${TCPFORK_INCLUDEDIR}")
else()
  set(includedir "${prefix}/${TCPFORK_INCLUDEDIR}")
endif()
string(RANDOM LENGTH 12 scratch)
set(scratch "${TCPFORK_BINARY_DIR}/install-${scratch}")
file(WRITE "${scratch}/tcpfork-handler.pc" "# SPDX-License-Identifier: MIT
prefix=${prefix}
includedir=${includedir}

Name: tcpfork-handler
Description: The tcpfork handler module ABI (a C header; modules link nothing of tcpfork)
Version: ${TCPFORK_VERSION}
Cflags: -I\${includedir}
")
file(INSTALL DESTINATION "${prefix}/share/pkgconfig" TYPE FILE FILES "${scratch}/tcpfork-handler.pc")
file(REMOVE_RECURSE "${scratch}")
