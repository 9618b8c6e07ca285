#include <gtest/gtest.h>

#include <stdexcept>
#include <utility>
#include <vector>

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

// With flush() at every tick (100 ms), a message that recurs every 300 ms is
// logged once, then counted once per window; after a window with none it is
// logged again.
TEST(RateLimitedLog, FlushedEachTickItLogsAPersistingConditionOnceThenCountsIt) {
  using std::chrono::milliseconds;
  RateLimitedLog log(1, std::chrono::seconds(10));
  auto t0 = Clock::time_point(std::chrono::seconds(100));
  uint64_t dropped = 0;
  int admitted = 0;
  std::vector<std::pair<int, uint64_t>> summaries;  // (ms, count)
  for (int ms = 0; ms <= 40'000; ms += 100) {
    if (uint64_t n = log.takeSummary(t0 + milliseconds(ms))) summaries.emplace_back(ms, n);
    if (ms <= 30'000 && ms % 300 == 0 && log.admit(t0 + milliseconds(ms), dropped)) ++admitted;
  }
  EXPECT_EQ(admitted, 1);
  // 0 admitted; 300..9900 (33), 10200..19800 (33), 20100..29700 (33) and 30000 dropped.
  using Summaries = std::vector<std::pair<int, uint64_t>>;
  EXPECT_EQ(summaries, (Summaries{{10'000, 33}, {20'000, 33}, {30'000, 33}, {40'000, 1}}));
  EXPECT_FALSE(log.admit(t0 + milliseconds(49'900), dropped)) << "a window after a summary admits none";
  EXPECT_EQ(log.takeSummary(t0 + milliseconds(50'000)), 1u);
  EXPECT_EQ(log.takeSummary(t0 + milliseconds(60'000)), 0u);
  EXPECT_TRUE(log.admit(t0 + milliseconds(60'000), dropped)) << "after a quiet window it is news again";
  EXPECT_EQ(dropped, 0u);
}

TEST(EscapeForLog, LeavesPrintableTextAlone) {
  EXPECT_EQ(escapeForLog(""), "");
  std::string plain = "counter 'seen' refused: \"quoted\" [x] C:\\dir ~";
  EXPECT_EQ(escapeForLog(plain), plain);
  std::string utf8 = "gr\u00fc\u00df \u65e5\u672c \U0001f600";
  EXPECT_EQ(escapeForLog(utf8), utf8) << "UTF-8 is text";
}

TEST(EscapeForLog, CannotStartALineOrDriveATerminal) {
  EXPECT_EQ(escapeForLog("hi\n2026-01-01 00:00:00.000 [master 1] critical: forged"),
            "hi\\n2026-01-01 00:00:00.000 [master 1] critical: forged");
  EXPECT_EQ(escapeForLog("a\rb\tc\x1b[2Jd\x7f"), "a\\rb\\tc\\x1b[2Jd\\x7f");
  EXPECT_EQ(escapeForLog(std::string_view("nul\0byte", 8)), "nul\\x00byte");
  EXPECT_EQ(escapeForLog("\x01\x1f"), "\\x01\\x1f");
  // C1 controls (CSI, NEL) and the Unicode line and paragraph separators.
  EXPECT_EQ(escapeForLog("\u009b2J \u0085 \u2028 \u2029"), "\\u009b2J \\u0085 \\u2028 \\u2029");
}

TEST(EscapeForLog, EscapesEveryByteThatIsNotUtf8) {
  EXPECT_EQ(escapeForLog("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escapeForLog("\x80 stray continuation"), "\\x80 stray continuation");
  EXPECT_EQ(escapeForLog("cut \xe6\x97"), "cut \\xe6\\x97") << "a sequence cut short";
  EXPECT_EQ(escapeForLog("\xc0\xaf"), "\\xc0\\xaf") << "an overlong '/'";
  EXPECT_EQ(escapeForLog("\xed\xa0\x80"), "\\xed\\xa0\\x80") << "a surrogate";
  EXPECT_EQ(escapeForLog("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80") << "past U+10FFFF";
  EXPECT_EQ(escapeForLog("\xc3\xa9\xc3"), "\xc3\xa9\\xc3");
}

TEST(EscapeForLog, EscapingTwiceChangesNothing) {
  std::string hostile = "a\\b\n\r\x1b\xff\u0085 end";
  std::string once = escapeForLog(hostile);
  EXPECT_EQ(once, "a\\b\\n\\r\\x1b\\xff\\u0085 end");
  EXPECT_EQ(escapeForLog(once), once);
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
