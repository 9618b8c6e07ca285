# The system configuration directory for an install prefix: /etc for /usr
# (Debian's and the GNU standards' convention), <prefix>/etc otherwise.
# Shared by cmake/install_config.cmake and cmake/uninstall.cmake.
function(tcpfork_sysconfdir prefix out)
  string(REGEX REPLACE "/+$" "" prefix "${prefix}")
  if(prefix STREQUAL "/usr" OR prefix STREQUAL "")
    set(${out} "/etc" PARENT_SCOPE)
  else()
    set(${out} "${prefix}/etc" PARENT_SCOPE)
  endif()
endfunction()
