#pragma once
// What every binary's --version prints: the project version (CMake's project
// VERSION) and the git revision it was built from. The two strings are defined
// in a source file the build writes (cmake/version.cmake), so a build after a
// new commit reports that commit.

#include <string>
#include <string_view>

namespace tcpfork {

extern const char kVersion[];      // "0.1.0"
extern const char kGitRevision[];  // "1a2b3c4", "1a2b3c4-dirty", or "unknown" outside git

// "<program> 0.1.0 (git 1a2b3c4)"
inline std::string versionLine(std::string_view program) {
  return std::string(program) + " " + kVersion + " (git " + kGitRevision + ")";
}

}  // namespace tcpfork
