#include "test/integration/pprof_run.h"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>

namespace tcpfork::test {

ToolRun runPprof(std::vector<std::string> argv, const std::string& dir) {
  argv.insert(argv.begin(), {"/usr/bin/env", "HOME=" + dir, "PPROF_TMPDIR=" + dir});
  return runCommand(argv, 90s);
}

std::vector<std::pair<std::vector<std::string>, uint64_t>> foldedStacks(const std::string& body) {
  std::vector<std::pair<std::vector<std::string>, uint64_t>> out;
  std::istringstream lines(body);
  static const std::regex kLine(R"(^([^ ;][^;]*(?:;[^;]+)*) ([0-9]+)$)");
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    EXPECT_TRUE(std::regex_match(line, m, kLine)) << "not a folded stack: " << line;
    if (m.empty()) continue;
    std::vector<std::string> frames;
    std::istringstream names(m[1].str());
    for (std::string frame; std::getline(names, frame, ';');) frames.push_back(frame);
    out.emplace_back(std::move(frames), std::stoull(m[2]));
  }
  return out;
}

}  // namespace tcpfork::test
