#include "test/integration/running_haproxy.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "base/unique_fd.h"

namespace tcpfork::test {
namespace {

// Replaces every match of `pattern` in `text`; throws unless it matched
// exactly `expected` times, so that a change to the shipped file which a
// substitution no longer fits fails loudly instead of testing something else.
std::string substitute(const std::string& text, const std::string& pattern, const std::string& replacement,
                       size_t expected = 1, const std::string& file = "deploy/haproxy/haproxy.cfg") {
  std::regex re(pattern, std::regex::multiline);
  auto matches = size_t(std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
  if (matches != expected) {
    throw std::runtime_error(file + ": /" + pattern + "/ matched " + std::to_string(matches) +
                             " times, expected " + std::to_string(expected));
  }
  return std::regex_replace(text, re, replacement);
}

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  std::string field;
  while (std::getline(in, field, separator)) fields.push_back(field);
  return fields;
}

}  // namespace

std::string RunningHaproxy::configFor(const std::string& shipped, const std::vector<int>& backendPorts, int frontendFd,
                                      int statsFd, const std::string& socketPath, const std::string& checkTiming) {
  std::string servers;
  for (size_t i = 0; i < backendPorts.size(); ++i) {
    servers += "    server tcpfork" + std::to_string(i + 1) + " 127.0.0.1:" + std::to_string(backendPorts[i]) +
               " check\n";
  }
  std::string cfg = shipped;
  // chroot and the drop to user haproxy need root and are not what is tested.
  cfg = substitute(cfg, R"(^ *(chroot|user|group) .*\n)", "", 3);
  // No syslog here: HAProxy's log lines go to its stderr, kept in the test dir.
  cfg = substitute(cfg, R"(log /dev/log local0)", "log stderr format raw local0");
  cfg = substitute(cfg, R"(stats socket \S+)", "stats socket " + socketPath);
  // Two descriptors per connection: keep within an unprivileged fd limit.
  cfg = substitute(cfg, R"(maxconn 20000)", "maxconn 1000");
  // Sockets the test bound (to ports the kernel chose) and HAProxy inherits.
  cfg = substitute(cfg, R"(bind 127\.0\.0\.1:9000)", "bind fd@" + std::to_string(frontendFd));
  cfg = substitute(cfg, R"(bind 127\.0\.0\.1:8404)", "bind fd@" + std::to_string(statsFd));
  if (!checkTiming.empty()) {
    cfg = substitute(cfg, R"(inter \S+ fastinter \S+ downinter \S+ fall \d+ rise \d+)", checkTiming);
  }
  // The shipped example servers become ours: the others are removed, then
  // the first is replaced by the whole list.
  cfg = substitute(cfg, R"(^ *server tcpfork[2-9] .*\n)", "", 2);
  cfg = substitute(cfg, R"(^ *server tcpfork1 .*\n)", servers);
  return cfg;
}

std::string RunningHaproxy::fleetConfigFor(const std::string& shipped, const std::vector<FleetServer>& servers,
                                           int frontendFd, int statsFd, const std::string& socketPath,
                                           const std::string& checkTiming) {
  const std::string file = "deploy/haproxy/fleet.cfg";
  auto sub = [&](const std::string& text, const std::string& pattern, const std::string& replacement,
                 size_t expected = 1) { return substitute(text, pattern, replacement, expected, file); };
  std::string lines;
  for (const FleetServer& s : servers) {
    lines += "    server " + s.name + " " + s.address + " agent-port " + std::to_string(s.agentPort) + "\n";
  }
  std::string cfg = shipped;
  cfg = sub(cfg, R"(^ *(chroot|user|group) .*\n)", "", 3);
  cfg = sub(cfg, R"(log /dev/log local0)", "log stderr format raw local0");
  cfg = sub(cfg, R"(stats socket \S+)", "stats socket " + socketPath);
  cfg = sub(cfg, R"(maxconn 20000)", "maxconn 1000");
  cfg = sub(cfg, R"(bind :9000)", "bind fd@" + std::to_string(frontendFd));
  cfg = sub(cfg, R"(bind 127\.0\.0\.1:8404)", "bind fd@" + std::to_string(statsFd));
  // The agent port is per server here (each host has its own ephemeral one).
  cfg = sub(cfg, R"(inter \S+ fastinter \S+ downinter \S+ fall \d+ rise \d+ agent-check agent-port \d+ agent-inter \S+)",
            checkTiming);
  cfg = sub(cfg, R"(^ *server host[2-9] .*\n)", "", 2);
  cfg = sub(cfg, R"(^ *server host1 .*\n)", lines);
  return cfg;
}

RunningHaproxy::RunningHaproxy(const std::vector<int>& backendPorts, const std::string& checkTiming)
    : RunningHaproxy([&](int frontendFd, int statsFd, const std::string& socketPath) {
        return configFor(readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/haproxy/haproxy.cfg"), backendPorts,
                         frontendFd, statsFd, socketPath, checkTiming);
      }) {}

RunningHaproxy::RunningHaproxy(const std::vector<FleetServer>& servers, const std::string& checkTiming)
    : RunningHaproxy([&](int frontendFd, int statsFd, const std::string& socketPath) {
        return fleetConfigFor(readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/haproxy/fleet.cfg"), servers,
                              frontendFd, statsFd, socketPath, checkTiming);
      }) {}

RunningHaproxy::RunningHaproxy(const ConfigMaker& makeConfig)
    : dir_(tempPath("haproxy")),
      socketPath_(dir_ + "/admin.sock"),
      configPath_(dir_ + "/haproxy.cfg"),
      logPath_(dir_ + "/haproxy.log"),
      frontend_(listeningLoopbackPort()),
      stats_(listeningLoopbackPort()),
      process_(
          [&] {
            if (::mkdir(dir_.c_str(), 0700) != 0) throw std::runtime_error("mkdir(" + dir_ + "): " + std::strerror(errno));
            std::ofstream(configPath_) << makeConfig(frontend_.fd.get(), stats_.fd.get(), socketPath_);
            // -db: foreground, no daemon, logs and alerts to stderr.
            return std::vector<std::string>{kHaproxy, "-f", configPath_, "-db"};
          }(),
          {frontend_.fd.get(), stats_.fd.get()}, logPath_) {
  if (!waitUntil([&] { return !process_.running() || !command("show info").empty(); }, 15s) ||
      !process_.running()) {
    throw std::runtime_error("haproxy did not start; its log:\n" + log() + "\nits config:\n" + readFile(configPath_));
  }
}

std::string RunningHaproxy::command(const std::string& line) const {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return "";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socketPath_.size() >= sizeof addr.sun_path) return "";
  std::memcpy(addr.sun_path, socketPath_.c_str(), socketPath_.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
  timeval timeout{.tv_sec = 2, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string request = line + "\n";
  if (::write(fd.get(), request.data(), request.size()) != ssize_t(request.size())) return "";
  // Without "prompt" HAProxy answers one command and closes.
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd.get(), buffer, sizeof buffer)) > 0;) answer.append(buffer, size_t(n));
  return answer;
}

StatRow RunningHaproxy::serverStat(const std::string& server) const {
  std::istringstream in(command("show stat"));
  std::string line;
  if (!std::getline(in, line) || line.rfind("# ", 0) != 0) return {};
  std::vector<std::string> columns = split(line.substr(2), ',');
  while (std::getline(in, line)) {
    std::vector<std::string> fields = split(line, ',');
    if (fields.size() < 2 || fields[0] != "tcpfork" || fields[1] != server) continue;
    StatRow row;
    for (size_t i = 0; i < columns.size() && i < fields.size(); ++i) row[columns[i]] = fields[i];
    return row;
  }
  return {};
}

std::string RunningHaproxy::serverStatus(const std::string& server) const {
  StatRow row = serverStat(server);
  auto it = row.find("status");
  return it == row.end() ? "" : it->second;
}

}  // namespace tcpfork::test
