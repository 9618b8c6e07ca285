// The admin port under attack: bodies and endless headers are refused without
// buffering them, idle and slow connections cannot lock out a scrape, and the
// master's descriptor limit makes it pause accepting rather than spin, while
// it keeps supervising.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "test/integration/http_get.h"
#include "test/integration/running_master.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

std::span<const std::byte> text(const std::string& s) { return std::as_bytes(std::span<const char>(s.data(), s.size())); }

// A connection whose sends give up after 5 s instead of blocking on a peer
// that stopped reading.
TestConnection adminConnection(int port) {
  TestConnection c(port, 5s);
  timeval tv{5, 0};
  ::setsockopt(c.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return c;
}

// Sends `chunk` until the peer refuses more or `most` bytes went; returns how many went.
size_t sendUntilRefused(TestConnection& c, const std::string& chunk, size_t most) {
  size_t sent = 0;
  try {
    while (sent < most) {
      c.send(text(chunk));
      sent += chunk.size();
    }
  } catch (const std::exception&) {
  }
  return sent;
}

std::string readSome(TestConnection& c) {
  auto bytes = c.read(512);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Non-blocking connects that are never used: the kernel may queue them, the
// master may accept them; either way they are held until the test ends.
struct IdleConnections {
  std::vector<UniqueFd> fds;
  IdleConnections(int port, int count) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(uint16_t(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < count; ++i) {
      UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd) break;
      ::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);
      fds.push_back(std::move(fd));
    }
  }
};

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

TEST(AdminHttp, ABodyIsRefusedAndNeverBuffered) {
  RunningMaster master(1);
  size_t before = residentBytes(master.process().pid());
  TestConnection c = adminConnection(master.metricsPort());
  c.send(text("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000000\r\n\r\n"));
  std::string answer = readSome(c);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 413")) << "got: " << answer;
  size_t sent = sendUntilRefused(c, std::string(1 << 20, 'a'), 64u << 20);
  size_t after = residentBytes(master.process().pid());
  EXPECT_LT(after, before + (16u << 20)) << sent << " bytes sent; RSS " << before << " -> " << after;
  EXPECT_EQ(httpGet(master.metricsPort(), "/healthz").status, 200);
}

TEST(AdminHttp, AHeaderLineThatNeverEndsIsCut) {
  RunningMaster master(1);
  size_t before = residentBytes(master.process().pid());
  TestConnection c = adminConnection(master.metricsPort());
  c.send(text("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: "));
  size_t sent = sendUntilRefused(c, std::string(64 << 10, 'a'), 64u << 20);
  EXPECT_LT(sent, 64u << 20) << "the master kept reading an endless header";
  EXPECT_TRUE(c.closedWithin(5s));
  size_t after = residentBytes(master.process().pid());
  EXPECT_LT(after, before + (16u << 20)) << sent << " bytes sent; RSS " << before << " -> " << after;
  EXPECT_EQ(httpGet(master.metricsPort(), "/healthz").status, 200);
}

// evhttp's timeout is per read: a byte every second kept a connection forever.
TEST(AdminHttp, ARequestThatDripsInIsClosedAtItsDeadline) {
  RunningMaster master(1);
  TestConnection c = adminConnection(master.metricsPort());
  c.send(text("GET /metrics HTTP/1.1\r\n"));
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 25 && !closed; ++i) {  // bounded: 25 s at most
    try {
      c.send(text("X: a\r\n"));
    } catch (const std::exception&) {
      closed = true;
      break;
    }
    closed = c.closedWithin(1s);
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  EXPECT_TRUE(closed) << "still open after " << took.count() << " ms";
  EXPECT_GE(took, 9s);
  EXPECT_TRUE(master.waitForLog("sent no whole request within 10 s", 5s)) << master.log();
}

// Under a descriptor limit of 256, 400 idle admin connections once made the
// master spin on accept() at 100% CPU, time out /healthz, and take 11.7 s to
// replace a killed worker.
TEST(AdminHttp, IdleConnectionsAtTheDescriptorLimitLockNothingOut) {
  std::string name = "tcpfork-test-admin-flood-" + uniqueTag();
  std::string config = tempPath("flood.yaml");
  std::string pidFile = tempPath("flood.pid");
  std::ofstream(config) << RunningMaster::baseYaml(name, pidFile, 2, tempPath("flood-profiles"));
  std::string log = tempPath("flood.log");
  ChildProcess master({"/usr/bin/prlimit", "--nofile=256:256", binary("tcpfork"), "-c", config}, {}, log);
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("ready:") != std::string::npos; }, 15s)) << readFile(log);
  std::smatch m;
  std::string start = readFile(log);
  ASSERT_TRUE(std::regex_search(start, m, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)")));
  int adminPort = std::stoi(m[1]);
  ASSERT_TRUE(std::regex_search(start, m, std::regex(R"(started worker 0 \(pid (\d+))")));
  pid_t worker0 = std::stoi(m[1]);

  IdleConnections flood(adminPort, 400);
  ASSERT_EQ(flood.fds.size(), 400u);
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("idle or unfinished one(s) to make room") != std::string::npos; }, 10s))
      << "the master should make room by closing idle connections:\n" << readFile(log);
  HttpResponse health = httpGet(adminPort, "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;

  // Supervision goes on: a killed worker comes back at once, and a reload works.
  ::kill(worker0, SIGKILL);
  EXPECT_TRUE(waitUntil([&] { return count(readFile(log), "started worker 0 (pid") == 2; }, 3s)) << readFile(log);
  master.signal(SIGHUP);
  EXPECT_TRUE(waitUntil([&] { return readFile(log).find("reload: generation 2 serving") != std::string::npos; }, 15s))
      << readFile(log);
  EXPECT_EQ(httpGet(adminPort, "/healthz").status, 200);
  EXPECT_LT(fs::file_size(log), 256u << 10) << "the log must not flood";
  master.signal(SIGTERM);
  EXPECT_TRUE(master.waitExit(5s).has_value());
}

// accept() failing with EMFILE made the master's loop spin and flood its log;
// now it pauses the listener, says so at most once a second, and resumes.
TEST(AdminHttp, AcceptAtTheDescriptorLimitPausesInsteadOfSpinning) {
  RunningMaster master(1);
  pid_t pid = master.process().pid();
  rlimit original{};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &original), 0);
  size_t open = 0;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"); it != fs::directory_iterator(); ++it) {
    ++open;
  }
  rlimit full{rlim_t(open), original.rlim_max};  // no descriptor left for an accept
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &full, nullptr), 0);
  size_t logBefore = master.log().size();
  IdleConnections knocking(master.metricsPort(), 20);
  ASSERT_TRUE(master.waitForLog("pausing accepts for 100 ms", 5s)) << master.log();
  // Two seconds at the limit: one line a second, not a flood.
  auto cpuSeconds = [&] {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string f;
    double ticks = 0;
    for (int n = 3; fields >> f && n <= 15; ++n) {
      if (n == 14 || n == 15) ticks += std::stod(f);
    }
    return ticks / double(sysconf(_SC_CLK_TCK));
  };
  double cpuBefore = cpuSeconds();
  std::this_thread::sleep_for(2s);  // the window observed, not a wait for a condition
  double cpuUsed = cpuSeconds() - cpuBefore;
  std::string during = master.log().substr(logBefore);
  EXPECT_LE(count(during, "pausing accepts"), 4u) << during.substr(0, 4000);
  EXPECT_LT(cpuUsed, 1.0) << "the master spun on accept()";

  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &original, nullptr), 0);
  EXPECT_TRUE(waitUntil([&] { return httpGet(master.metricsPort(), "/healthz").status == 200; }, 5s));
}

}  // namespace
}  // namespace tcpfork::test
