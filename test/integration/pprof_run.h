#pragma once
// The profile tools' side of the profiling tests: running google-pprof and
// `go tool pprof` against the admin port, and reading folded stacks.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "test/integration/tool_run.h"

namespace tcpfork::test {

// A pprof tool (`argv[0]` an absolute path), bounded, with HOME and
// PPROF_TMPDIR in `dir`: where the tools keep what they fetch.
ToolRun runPprof(std::vector<std::string> argv, const std::string& dir);

// The lines of a folded-stacks answer, "root;...;leaf COUNT", each checked.
std::vector<std::pair<std::vector<std::string>, uint64_t>> foldedStacks(const std::string& body);

}  // namespace tcpfork::test
