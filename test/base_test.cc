#include <gtest/gtest.h>

#include <stdexcept>

#include "base/log.h"
#include "base/socket.h"

namespace tcpfork {
namespace {

using Clock = std::chrono::steady_clock;

TEST(RateLimitedLog, AdmitsABurstThenCountsWhatItDrops) {
  RateLimitedLog log(3);
  auto t0 = Clock::time_point(std::chrono::seconds(100));
  uint64_t dropped = 99;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(log.admit(t0, dropped));
    EXPECT_EQ(dropped, 0u);
  }
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(log.admit(t0 + std::chrono::milliseconds(500), dropped));
  EXPECT_TRUE(log.admit(t0 + std::chrono::milliseconds(1000), dropped));
  EXPECT_EQ(dropped, 5u) << "the first admitted message reports what was dropped";
  EXPECT_TRUE(log.admit(t0 + std::chrono::milliseconds(1001), dropped));
  EXPECT_EQ(dropped, 0u);
}

TEST(SocketAddress, ParsesTheForms) {
  EXPECT_EQ(parseAddress("127.0.0.1:8888").toString(), "127.0.0.1:8888");
  EXPECT_EQ(parseAddress(":8888").toString(), "0.0.0.0:8888");
  EXPECT_EQ(parseAddress("[::1]:0").toString(), "[::1]:0");
  EXPECT_EQ(parseAddress("localhost:80").port(), 80);
}

TEST(SocketAddress, RejectsWithAReason) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:x", "::1:80", "300.1.1.1:80",
                          "example.invalid:80"}) {
    EXPECT_THROW(parseAddress(bad), std::invalid_argument) << bad;
  }
  try {
    parseAddress("127.0.0.1:99999");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("port '99999'"), std::string::npos) << e.what();
  }
}

TEST(SocketAddress, KnowsLoopback) {
  EXPECT_TRUE(isLoopback(parseAddress("127.0.0.1:1")));
  EXPECT_TRUE(isLoopback(parseAddress("127.3.4.5:1")));
  EXPECT_TRUE(isLoopback(parseAddress("[::1]:1")));
  EXPECT_TRUE(isLoopback(parseAddress("[::ffff:127.0.0.1]:1")));
  EXPECT_FALSE(isLoopback(parseAddress("0.0.0.0:1")));
  EXPECT_FALSE(isLoopback(parseAddress("10.1.2.3:1")));
  EXPECT_FALSE(isLoopback(parseAddress("[::]:1")));
}

TEST(Socket, ListensOnAnEphemeralLoopbackPort) {
  UniqueFd fd = listenTcp(parseAddress("127.0.0.1:0"));
  SocketAddress bound = localAddress(fd.get());
  EXPECT_GT(bound.port(), 0);
  UniqueFd client = connectTcp(bound);
  EXPECT_TRUE(client.valid());
}

}  // namespace
}  // namespace tcpfork
