// The admin port under attack: bodies and endless headers are refused without
// buffering them, idle and slow connections cannot lock out a scrape, and the
// master's descriptor limit makes it pause accepting rather than spin, while
// it keeps supervising.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
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


// A master started under `prlimit --nofile=NOFILE` with `workers` workers and
// the pprof endpoint on; knows the admin connection limit it logged.
struct TightMaster {
  std::string name = "tcpfork-test-admin-tight-" + uniqueTag();
  std::string log = tempPath("tight.log");
  ChildProcess process;
  int adminPort = 0;
  unsigned connectionLimit = 0;

  TightMaster(unsigned workers, unsigned nofile)
      : process(
            [&] {
              std::string config = tempPath("tight.yaml");
              std::ofstream(config) << RunningMaster::baseYaml(name, tempPath("tight.pid"), workers, tempPath("tight-profiles"))
                                    << "  http: true\nmax_workers: " << workers << "\n";
              return std::vector<std::string>{"/usr/bin/prlimit", "--nofile=" + std::to_string(nofile) + ":" + std::to_string(nofile),
                                              binary("tcpfork"), "-c", config};
            }(),
            {}, log) {
    if (!waitUntil([&] { return readFile(log).find("ready:") != std::string::npos; }, 15s)) {
      throw std::runtime_error("the master did not become ready:\n" + readFile(log));
    }
    std::smatch m;
    std::string start = readFile(log);
    if (!std::regex_search(start, m, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)"))) {
      throw std::runtime_error("no admin port in the log:\n" + start);
    }
    adminPort = std::stoi(m[1]);
    if (std::regex_search(start, m, std::regex(R"(leaves (\d+) admin HTTP connection)"))) connectionLimit = std::stoul(m[1]);
  }
  ~TightMaster() {
    process.signal(SIGTERM);
    process.waitExit(5s);
  }
};

// 64 profile requests, one per worker, once held every admin connection for
// their whole length: /healthz and /metrics waited in the kernel's queue.
// Profiles now take at most half the connections; the rest are answered 429
// at once with a Retry-After.
TEST(AdminHttp, ProfileRequestsPastTheirShareLeaveRoomForHealthAndMetrics) {
  constexpr unsigned kWorkers = 8;
  // Aim at 4 admin connections: what a descriptor limit leaves depends on
  // how many the master has open at start, so the limit is found from what
  // the master says it has open and keeps in reserve.
  constexpr unsigned kWanted = 4;
  unsigned nofile = 94;
  std::unique_ptr<TightMaster> tight;
  for (int attempt = 0; attempt < 3; ++attempt) {
    tight = std::make_unique<TightMaster>(kWorkers, nofile);
    if (tight->connectionLimit == kWanted) break;
    std::smatch m;
    std::string start = readFile(tight->log);
    ASSERT_TRUE(std::regex_search(start, m, std::regex(R"(after (\d+) descriptors open and (\d+) kept in reserve)")))
        << start;
    nofile = unsigned(std::stoul(m[1]) + std::stoul(m[2])) + kWanted;
    tight.reset();
  }
  TightMaster& master = *tight;
  unsigned limit = master.connectionLimit;
  ASSERT_GE(limit, 2u) << readFile(master.log);
  ASSERT_LE(limit + 2, kWorkers) << "more admin connections than this test has workers to profile:\n" << readFile(master.log);
  unsigned requests = limit + 2;  // more than the admin port holds at once
  std::vector<std::future<HttpResponse>> profiles;
  for (unsigned worker = 0; worker < requests; ++worker) {
    profiles.push_back(std::async(std::launch::async, [&, worker] {
      // GET, as google-pprof and go tool pprof send it.
      return httpRequest(master.adminPort, "GET", "/debug/pprof/profile?seconds=6&worker=" + std::to_string(worker), {},
                         20s);
    }));
  }
  // Half the connections go to profiles either way (before the cap, all of them did).
  ASSERT_TRUE(waitUntil([&] { return count(readFile(master.log), "-second CPU profile of worker") >= limit / 2; }, 10s)) << readFile(master.log);
  for (const char* path : {"/healthz", "/metrics"}) {
    auto start = std::chrono::steady_clock::now();
    HttpResponse r = httpRequest(master.adminPort, "GET", path, {}, 10s);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_LT(took, 2s) << path << " waited behind the profiles";
  }
  unsigned served = 0;
  unsigned refused = 0;
  for (auto& f : profiles) {
    HttpResponse r = f.get();
    if (r.status == 200) {
      ++served;
    } else {
      EXPECT_EQ(r.status, 429) << r.headers << r.body;
      EXPECT_NE(r.headers.find("Retry-After: "), std::string::npos) << r.headers;
      ++refused;
    }
  }
  EXPECT_EQ(served, limit / 2) << readFile(master.log);
  EXPECT_EQ(refused, requests - limit / 2);
}

// The IPv4 addresses on this machine's interfaces.
std::vector<std::string> ownAddresses() {
  std::vector<std::string> own;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return own;
  for (ifaddrs* it = list; it; it = it->ifa_next) {
    if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN];
    const in_addr& address = reinterpret_cast<const sockaddr_in*>(it->ifa_addr)->sin_addr;
    if (::inet_ntop(AF_INET, &address, text, sizeof text)) own.emplace_back(text);
  }
  ::freeifaddrs(list);
  return own;
}

std::optional<std::string> nonLoopbackAddress() {
  for (const auto& address : ownAddresses()) {
    if (!address.starts_with("127.")) return address;
  }
  return std::nullopt;
}

// A documentation address (RFC 5737) that is not this machine's.
std::string foreignAddress() {
  auto own = ownAddresses();
  for (std::string candidate : {"203.0.113.77", "198.51.100.77", "192.0.2.77"}) {
    if (std::find(own.begin(), own.end(), candidate) == own.end()) return candidate;
  }
  return "203.0.113.78";
}

// DNS rebinding: a page on attacker.example whose name then resolves to
// 127.0.0.1 reaches the admin port from the operator's browser, with that
// name in Host. Such a Host is refused; the names and addresses of this
// machine are served, whatever the port (an SSH tunnel changes it).
TEST(AdminHttp, AHostThatIsNotThisMachineIsRefused) {
  RunningMaster master(1, "profile:\n  dir: " + tempPath("profiles") + "\n  http: true\n");
  int port = master.metricsPort();
  std::string p = std::to_string(port);
  for (const char* path : {"/", "/status", "/metrics", "/healthz", "/debug/pprof/profile?seconds=1",
                           "/debug/worker/0/pprof/profile?seconds=1"}) {
    for (const std::string& host : std::vector<std::string>{"attacker.example", "attacker.example:" + p, "127.0.0.1.attacker.example:" + p,
                             "localhost.attacker.example"}) {
      HttpResponse r = httpRequest(port, "GET", path, {"Host: " + host});
      EXPECT_EQ(r.status, 421) << path << " with Host " << host << ": " << r.body;
      EXPECT_NE(r.body.find("not a name of this server"), std::string::npos) << r.body;
    }
  }
  EXPECT_EQ(master.log().find("pprof: "), std::string::npos) << "a refused request started a profile:\n" << master.log();
  for (const std::string& host : std::vector<std::string>{"127.0.0.1:" + p, "localhost:" + p, "[::1]:" + p, "127.0.0.1", "LocalHost:9999", "[::1]"}) {
    HttpResponse r = httpRequest(port, "GET", "/status", {"Host: " + host});
    EXPECT_EQ(r.status, 200) << "Host " << host << ": " << r.body;
  }
  // An address of this machine, and one that is not.
  if (auto own = nonLoopbackAddress()) {
    HttpResponse r = httpRequest(port, "GET", "/status", {"Host: " + *own + ":" + p});
    EXPECT_EQ(r.status, 200) << "Host " << *own << ": " << r.body;
  }
  EXPECT_EQ(httpRequest(port, "GET", "/status", {"Host: " + foreignAddress() + ":" + p}).status, 421);
  // An HTTP/1.0 tool may send no Host at all; no browser does.
  TestConnection c(port, 5s);
  std::string bare = "GET /healthz HTTP/1.0\r\n\r\n";
  c.send(text(bare));
  std::string answer = readSome(c);
  EXPECT_TRUE(answer.starts_with("HTTP/1.0 200")) << "no Host: " << answer;
  // The absolute form names the host too, and wins over the Host header.
  HttpResponse absolute = httpRequest(port, "GET", "http://attacker.example/status", {"Host: 127.0.0.1:" + p});
  EXPECT_EQ(absolute.status, 421) << absolute.body;
  for (const std::string& target : std::vector<std::string>{"http://127.0.0.1:" + p + "/status", "http://[::1]:" + p + "/status"}) {
    HttpResponse r = httpRequest(port, "GET", target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
  }
}

TEST(AdminHttp, AllowRemoteServesAnyHost) {
  RunningMaster master(1, "metrics:\n  listen: 127.0.0.1:0\n  allow_remote: true\n");
  EXPECT_EQ(httpRequest(master.metricsPort(), "GET", "/status", {"Host: tcpfork-01.example"}).status, 200);
}

// Starting a profile changes the worker's state: it takes POST. GET stays
// for google-pprof and go tool pprof, which can only GET, and is refused
// when a browser sends it (a page can make a browser GET any URL: an <img>).
TEST(AdminHttp, AProfileStartsWithPostAndNotWithABrowsersGet) {
  RunningMaster master(1, "profile:\n  dir: " + tempPath("profiles") + "\n  http: true\n");
  int port = master.metricsPort();
  std::string p = std::to_string(port);
  for (const auto& browser : std::vector<std::vector<std::string>>{
           {"Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors", "Sec-Fetch-Dest: image"},
           {"Sec-Fetch-Site: none", "Sec-Fetch-Mode: navigate", "Sec-Fetch-Dest: document"},
           {"Origin: http://127.0.0.1:" + p}}) {
    HttpResponse r = httpRequest(port, "GET", "/debug/pprof/profile?seconds=1", browser);
    EXPECT_EQ(r.status, 405) << browser[0] << ": " << r.body;
    EXPECT_NE(r.headers.find("Allow: POST"), std::string::npos) << r.headers;
  }
  EXPECT_EQ(httpRequest(port, "HEAD", "/debug/pprof/profile?seconds=1").status, 405);
  // A page on another site can POST a form to any address, Origin and all.
  HttpResponse crossSite = httpRequest(port, "POST", "/debug/pprof/profile?seconds=1",
                                       {"Origin: http://attacker.example", "Sec-Fetch-Site: cross-site"});
  EXPECT_EQ(crossSite.status, 403) << crossSite.body;
  EXPECT_EQ(master.log().find("pprof: "), std::string::npos) << "a refused request started a profile:\n" << master.log();

  HttpResponse posted = httpRequest(port, "POST", "/debug/pprof/profile?seconds=1&worker=0", {}, 15s);
  EXPECT_EQ(posted.status, 200) << posted.body;
  EXPECT_TRUE(posted.body.size() > 16) << posted.body;
  // The form a same-origin page would send.
  HttpResponse sameOrigin = httpRequest(port, "POST", "/debug/worker/0/pprof/profile?seconds=1",
                                        {"Host: localhost:" + p, "Origin: http://localhost:" + p,
                                         "Sec-Fetch-Site: same-origin"},
                                        15s);
  EXPECT_EQ(sameOrigin.status, 200) << sameOrigin.body;
  // What the pprof tools send.
  HttpResponse tool = httpRequest(port, "GET", "/debug/pprof/profile?seconds=1", {"User-Agent: Go-http-client/1.1"}, 15s);
  EXPECT_EQ(tool.status, 200) << tool.body;
  // The other paths change nothing and take GET (and HEAD) only.
  for (const char* path : {"/", "/status", "/metrics", "/healthz"}) {
    EXPECT_EQ(httpRequest(port, "POST", path).status, 405) << path;
  }
}

}  // namespace
}  // namespace tcpfork::test
