#pragma once
// The handler module the tests load (test/modules/test_handler.c, built into
// lib/tcpfork/test of the build tree), and the config that loads it.

#include <string>

namespace tcpfork::test {

std::string testModulePath();

// A `handler:` map loading the test module with `config` (a YAML flow map),
// then `extra`: more lines of the map, each indented two spaces.
std::string testModuleYaml(const std::string& config, const std::string& extra = "");

}  // namespace tcpfork::test
