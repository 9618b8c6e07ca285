# Writes OUTPUT, the source file defining what --version prints: VERSION (the
# project version) and the git revision SOURCE_DIR is at, with "-dirty" when
# tracked files differ from it, or "unknown" outside a git checkout.
#
# Run by the build on every build, not at configure time, so the revision is
# never stale; the file is rewritten only when its content changes, so an
# unchanged revision recompiles and relinks nothing.
#
#   cmake -DSOURCE_DIR=... -DVERSION=... -DOUTPUT=... [-DGIT_EXECUTABLE=...] -P version.cmake

set(revision "unknown")
if(GIT_EXECUTABLE)
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse --show-toplevel --short=7 HEAD
                  RESULT_VARIABLE failed OUTPUT_VARIABLE lines ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  # Only our own checkout counts: a source tarball unpacked inside some other
  # repository (a packaging tree) must not report that repository's commit.
  if(NOT failed)
    string(REPLACE "\n" ";" lines "${lines}")
    list(GET lines 0 toplevel)
    list(GET lines 1 hash)
    file(REAL_PATH "${toplevel}" toplevel)
    file(REAL_PATH "${SOURCE_DIR}" source)
    if(toplevel STREQUAL source)
      set(revision "${hash}")
      execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
                      RESULT_VARIABLE failed OUTPUT_VARIABLE changes ERROR_QUIET)
      if(failed OR NOT changes STREQUAL "")
        string(APPEND revision "-dirty")
      endif()
    endif()
  endif()
endif()

set(content "// Written by cmake/version.cmake at build time; not part of the source tree.
#include \"base/version.h\"

namespace tcpfork {

const char kVersion[] = \"${VERSION}\";
const char kGitRevision[] = \"${revision}\";

}  // namespace tcpfork
")

set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUTPUT}" "${content}")
  message(STATUS "tcpfork ${VERSION} (git ${revision})")
endif()
