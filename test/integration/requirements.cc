#include "test/integration/requirements.h"

#include <cstdlib>
#include <string_view>

namespace tcpfork::test {

bool everyTestMustRun() {
  const char* value = std::getenv("TCPFORK_REQUIRE_ALL_TESTS");
  return value != nullptr && std::string_view(value) == "1";
}

}  // namespace tcpfork::test
