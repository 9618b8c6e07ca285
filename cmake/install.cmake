# What `make install` (cmake --install) puts where. Included from the top
# CMakeLists.txt; the man pages are installed by docs/man/CMakeLists.txt.

# The binaries stay together: the master runs the tcpfork-worker found
# beside its own executable. (Not the benchmark baseline, not the tests.)
install(TARGETS tcpfork tcpfork-worker tcpfork-client tcpfork-stats tcpfork-journal
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Handler modules tcpfork ships, where DESIGN.md's example config names them
# ($(PREFIX)/lib/tcpfork/handlers, not the multiarch libdir: they are
# plugins a config names by path, not libraries a linker looks for).
install(TARGETS journal_module LIBRARY DESTINATION lib/tcpfork/handlers)

install(FILES README.md LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The handbook beside the README, laid out as in the source tree so that the
# links between its pages work where it is installed (README.md links
# docs/running.md, a page ../README.md, images/*.png and man/, whose scdoc
# sources it names; the pages they make are installed as man pages too).
# The install tests and the package test check every link.
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs
  FILES_MATCHING PATTERN "*.md" PATTERN "*.png" PATTERN "*.scd")
install(FILES deploy/tcpfork.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# systemd units go where systemd looks under the prefix (/usr/lib/systemd/system,
# /usr/local/lib/systemd/system); the service names the installed binary and
# config, so cmake/install_config.cmake writes it for the prefix.
install(FILES deploy/systemd/tcpfork.socket DESTINATION lib/systemd/system)

# The configuration and the logrotate snippet go under the system
# configuration directory, which depends on the prefix given at install time:
# cmake/install_config.cmake resolves it then.
install(CODE "
  set(TCPFORK_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(TCPFORK_BINARY_DIR \"${PROJECT_BINARY_DIR}\")
  set(TCPFORK_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(TCPFORK_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(TCPFORK_VERSION \"${PROJECT_VERSION}\")
")
install(SCRIPT cmake/install_config.cmake)
