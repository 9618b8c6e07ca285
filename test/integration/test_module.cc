#include "test/integration/test_module.h"

namespace tcpfork::test {

std::string testModulePath() { return std::string(TCPFORK_TEST_MODULE_DIR) + "/test_handler.so"; }

// A module's workers shed by default (overload.shed: auto), and the tests
// of everything else check exact results: on a loaded machine, or under the
// sanitizers, a pipelined burst can wait past overload.target and come back
// busy (255). So shedding is off here unless `extra` sets overload: itself
// (the overload tests do).
std::string testModuleYaml(const std::string& config, const std::string& extra) {
  std::string shedding = extra.find("overload:") == std::string::npos ? "overload:\n  shed: off\n" : "";
  return "handler:\n  module: " + testModulePath() + "\n  config: " + config + "\n" + extra + shedding;
}

}  // namespace tcpfork::test
