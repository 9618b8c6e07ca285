// systemd without systemd as PID 1: the master's sd_notify messages arrive on
// a notification socket the test owns (NOTIFY_SOCKET) at the right moments,
// watchdog keep-alives flow when asked for, and the shipped unit files pass
// `systemd-analyze verify`. (Socket activation: Master.ServesSocketsHandedOverBySystemd.)

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "base/unique_fd.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

// A datagram socket standing in for systemd's notification socket; the
// master finds it through NOTIFY_SOCKET while this object lives.
class NotifySocket {
 public:
  NotifySocket() : path_(tempPath("notify.sock")) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    if (!fd_ || ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("bind(" + path_ + "): " + std::strerror(errno));
    }
    timeval tv{0, 100'000};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~NotifySocket() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unlink(path_.c_str());
  }

  // Waits for a message containing `field` (e.g. "READY=1"), keeping every
  // message seen in `seen()`.
  bool waitFor(const std::string& field, std::chrono::milliseconds timeout) {
    return waitUntil(
        [&] {
          char buffer[4096];
          ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
          if (n <= 0) return false;
          std::string message(buffer, size_t(n));
          seen_.push_back(message);
          return message.find(field) != std::string::npos;
        },
        timeout);
  }
  std::string seen() const {
    std::string all;
    for (const auto& m : seen_) all += "[" + m + "] ";
    return all;
  }
  size_t count(const std::string& field) const {
    return size_t(std::count_if(seen_.begin(), seen_.end(),
                                [&](const std::string& m) { return m.find(field) != std::string::npos; }));
  }

 private:
  std::string path_;
  UniqueFd fd_;
  std::vector<std::string> seen_;
};

TEST(Systemd, NotifiesReadyReloadingAndStopping) {
  NotifySocket notify;
  RunningMaster master(2);
  ASSERT_TRUE(notify.waitFor("READY=1", 10s)) << notify.seen() << master.log();
  // READY=1 means every worker serves: nothing may be still starting.
  EXPECT_EQ(master.servingPids().size(), 2u);
  EXPECT_TRUE(master.roundTrip(1));
  // STATUS= comes once a second.
  EXPECT_TRUE(notify.waitFor("STATUS=2 of 2 workers serving, generation 1", 3s)) << notify.seen();

  master.process().signal(SIGHUP);
  ASSERT_TRUE(notify.waitFor("RELOADING=1", 5s)) << notify.seen();
  ASSERT_TRUE(notify.waitFor("READY=1", 10s)) << notify.seen();
  // READY=1 again only once the new generation serves.
  EXPECT_TRUE(master.waitForLog("reload: generation 2 serving", 1s)) << master.log();

  // A reload that is refused still answers RELOADING=1 with READY=1.
  master.writeConfig(RunningMaster::baseYaml(master.name(), master.pidFile(), 2, master.profileDir()) + "workerz: 1\n");
  master.process().signal(SIGHUP);
  ASSERT_TRUE(notify.waitFor("RELOADING=1", 5s)) << notify.seen();
  ASSERT_TRUE(notify.waitFor("READY=1", 5s)) << notify.seen();

  master.process().signal(SIGQUIT);
  ASSERT_TRUE(notify.waitFor("STOPPING=1", 5s)) << notify.seen();
  ASSERT_TRUE(master.process().waitExit(15s).has_value());
}

TEST(Systemd, SendsWatchdogKeepAlivesWhenAsked) {
  NotifySocket notify;
  ::setenv("WATCHDOG_USEC", "400000", 1);  // 0.4 s: keep-alives every 0.2 s
  RunningMaster master(1);
  ASSERT_TRUE(notify.waitFor("READY=1", 10s)) << notify.seen();
  // Keep-alives start before READY (a slow start must not trip the watchdog):
  // count only those after it.
  size_t before = notify.count("WATCHDOG=1");
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitUntil(
      [&] { return notify.waitFor("WATCHDOG=1", 100ms) && notify.count("WATCHDOG=1") >= before + 5; }, 5s))
      << notify.seen();
  // Five keep-alives at half the interval are four intervals apart: 0.8 s, not less.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 600ms);
}

TEST(Systemd, UnitFilesPassSystemdAnalyzeVerify) {
  TCPFORK_REQUIRE(fs::exists("/usr/bin/systemd-analyze"), "systemd-analyze (Debian package systemd) is not installed");
  // The units name the installed binary; point them at the built one.
  fs::path dir = fs::path(tempPath("units"));
  fs::create_directories(dir);
  for (const char* unit : {"tcpfork.service", "tcpfork.socket"}) {
    std::string text = readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/systemd/" + unit);
    ASSERT_FALSE(text.empty()) << unit;
    text = std::regex_replace(text, std::regex("/usr/local/bin/tcpfork"), binary("tcpfork"));
    std::ofstream(dir / unit) << text;
  }
  std::string log = tempPath("verify.log");
  ChildProcess verify({"/usr/bin/systemd-analyze", "verify", "--man=no", (dir / "tcpfork.service").string(),
                       (dir / "tcpfork.socket").string()},
                      {}, log);
  auto status = verify.waitExit(60s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << readFile(log);
  EXPECT_EQ(readFile(log), "") << "systemd-analyze has warnings";
}

}  // namespace
}  // namespace tcpfork::test
