#include "test/integration/test_module.h"

namespace tcpfork::test {

std::string testModulePath() { return std::string(TCPFORK_TEST_MODULE_DIR) + "/test_handler.so"; }

std::string testModuleYaml(const std::string& config, const std::string& extra) {
  return "handler:\n  module: " + testModulePath() + "\n  config: " + config + "\n" + extra;
}

}  // namespace tcpfork::test
