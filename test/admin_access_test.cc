// The admin port's Host rule, on the host names a request can carry.

#include "master/admin/admin_access.h"

#include <gtest/gtest.h>

namespace tcpfork {
namespace {

TEST(AdminAccess, HostOfTakesTheHostOfAnAuthority) {
  EXPECT_EQ(AdminAccess::hostOf("127.0.0.1:8889"), "127.0.0.1");
  EXPECT_EQ(AdminAccess::hostOf("LocalHost"), "localhost");
  EXPECT_EQ(AdminAccess::hostOf("localhost.:8889"), "localhost");
  EXPECT_EQ(AdminAccess::hostOf("[::1]:8889"), "::1");
  EXPECT_EQ(AdminAccess::hostOf("[::1]"), "::1");
  EXPECT_EQ(AdminAccess::hostOf("::1"), "::1");  // as evhttp may give an absolute target's host
  EXPECT_EQ(AdminAccess::hostOf("attacker.example:80"), "attacker.example");
  for (const char* bad : {"", ":8889", "[::1", "[::1]x", "[::1]:port", "host:123456", "host:12a"}) {
    EXPECT_EQ(AdminAccess::hostOf(bad), std::nullopt) << bad;
  }
}

TEST(AdminAccess, AllowsOnlyNamesOfThisMachine) {
  AdminAccess access(parseAddress("127.0.0.1:8889"), false);
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(access.allowsHost(host)) << host;
  }
  for (const char* host : {"attacker.example", "localhost.attacker.example", "127.0.0.1.nip.io", "0.0.0.0",
                           "203.0.113.77", "2001:db8::77"}) {
    EXPECT_FALSE(access.allowsHost(host)) << host;
  }
  EXPECT_TRUE(AdminAccess(parseAddress("127.0.0.1:8889"), true).allowsHost("tcpfork-01.example"));
}

}  // namespace
}  // namespace tcpfork
