#include "test/integration/fleet_host.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "base/socket.h"
#include "stats/segment.h"
#include "test/integration/running_master.h"

namespace tcpfork::test {
namespace {

// A port on `ip` that nobody else can take while the returned socket lives
// (bound with SO_REUSEADDR, never listening), for a host that must come back
// on the same address after a restart. tcpfork binds with SO_REUSEADDR too.
BoundPort reservePort(const std::string& ip) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int on = 1;
  if (!fd || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) return {};
  SocketAddress address = parseAddress(ip + ":0");
  if (::bind(fd.get(), address.get(), address.length) != 0) return {};
  int port = localAddress(fd.get()).port();
  return {std::move(fd), port};
}

bool reapWithin(pid_t pid, std::chrono::milliseconds timeout) {
  return waitUntil([&] { return ::waitpid(pid, nullptr, WNOHANG) == pid || (::kill(pid, 0) != 0 && errno == ESRCH); },
                   timeout);
}

bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

}  // namespace

FleetHost::FleetHost(int n, unsigned workers)
    : ip_("127.0.0." + std::to_string(n)),
      name_(uniqueName()),
      configPath_(tempPath("fleet.yaml")),
      pidFile_(tempPath("fleet.pid")),
      logPath_(tempPath("fleet.log")),
      service_(reservePort(ip_)),
      metrics_(reservePort(ip_)),
      agent_(reservePort(ip_)) {
  // drain_delay: longer than the fleet test's agent-inter (200 ms).
  std::ofstream(configPath_) << "name: " << name_ << "\nlisten: " << ip_ << ":" << service_.port
                             << "\npid_file: " << pidFile_ << "\nworkers: " << workers
                             << "\nmetrics:\n  listen: " << ip_ << ":" << metrics_.port
                             << "\nagent:\n  listen: " << ip_ << ":" << agent_.port << "\n  drain_delay: 600ms"
                             << "\ndrain_timeout: 5s\nworker_timeout: 20s\nsteering:\n  stale_after: 300ms\n"
                             << "profile:\n  dir: " << tempPath("profiles") << "\n";
}

std::set<pid_t> FleetHost::workers() const { return workerPids(name_); }

::testing::AssertionResult FleetHost::start() {
  size_t before = count(log(), "ready:");
  children_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{binary("tcpfork"), "-c", configPath_},
                                                     std::vector<int>{}, logPath_));
  pid_ = children_.back()->pid();
  if (!waitUntil([&] { return count(log(), "ready:") > before || !alive(pid_); }, 15s) || !alive(pid_)) {
    return ::testing::AssertionFailure() << ip_ << ": the master did not become ready; its log:\n" << log();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult FleetHost::quit() {
  ::kill(pid_, SIGQUIT);
  if (!reap(pid_, 20s)) return ::testing::AssertionFailure() << ip_ << ": the master did not exit; its log:\n" << log();
  pid_ = 0;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult FleetHost::upgrade() {
  const std::string served = "serves beside it until it gets SIGQUIT";
  size_t before = count(log(), served);
  pid_t old = pid_;
  ::kill(old, SIGUSR2);
  if (!waitUntil([&] { return count(log(), served) > before; }, 20s)) {
    return ::testing::AssertionFailure() << ip_ << ": the new master did not serve; the log:\n" << log();
  }
  // The new master has written its pid there (the old one's is .oldbin).
  pid_t next = 0;
  try {
    next = pid_t(std::stoi(readFile(pidFile_)));
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << ip_ << ": no pid in " << pidFile_ << ": " << e.what();
  }
  if (next == old) return ::testing::AssertionFailure() << ip_ << ": " << pidFile_ << " still names the old master";
  adopted_.insert(next);
  ::kill(old, SIGQUIT);
  if (!reap(old, 20s)) return ::testing::AssertionFailure() << ip_ << ": the old master did not exit:\n" << log();
  pid_ = next;
  return ::testing::AssertionSuccess();
}

void FleetHost::kill() {
  std::set<pid_t> workers = workerPids(name_);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap(pid_, 5s);
  }
  for (pid_t pid : workers) ::kill(pid, SIGKILL);
  for (pid_t pid : workers) reapWithin(pid, 5s);
  for (pid_t pid : adopted_) ::kill(pid, SIGKILL);
  pid_ = 0;
  stats::StatsSegment::remove(name_);
}

bool FleetHost::reap(pid_t pid, std::chrono::milliseconds timeout) {
  for (auto& child : children_) {
    if (child->pid() == pid) return child->waitExit(timeout).has_value();
  }
  bool gone = reapWithin(pid, timeout);
  if (gone) adopted_.erase(pid);
  return gone;
}

}  // namespace tcpfork::test
