// The handbook shows examples/handlers/ack.c as the build compiles it: the
// first code block of docs/handlers.md is the file without its comment.

#include <gtest/gtest.h>

#include <string>

#include "test/integration/process.h"

namespace tcpfork::test {
namespace {

TEST(Docs, ShowTheExampleHandlerModuleAsTheBuildCompilesIt) {
  std::string readme = readFile(std::string(TCPFORK_SOURCE_DIR) + "/docs/handlers.md");
  size_t section = readme.find("# Writing a handler\n");
  ASSERT_NE(section, std::string::npos);
  size_t begin = readme.find("```c\n", section);
  ASSERT_NE(begin, std::string::npos);
  begin += 5;
  size_t end = readme.find("```\n", begin);
  ASSERT_NE(end, std::string::npos);
  std::string shown = readme.substr(begin, end - begin);

  std::string source = readFile(std::string(TCPFORK_SOURCE_DIR) + "/examples/handlers/ack.c");
  size_t comment = source.find("*/\n");
  ASSERT_TRUE(source.starts_with("/*") && comment != std::string::npos) << source;
  EXPECT_EQ(shown, source.substr(comment + 3));
}

}  // namespace
}  // namespace tcpfork::test
