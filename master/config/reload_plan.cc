#include "master/config/reload_plan.h"

#include <fmt/format.h>

#include <string_view>

namespace tcpfork {
namespace {

// Puts the running value back; true when the new file had changed it.
template <typename T>
bool putBack(T& next, const T& running) {
  if (next == running) return false;
  next = running;
  return true;
}

// A restart-only key: its name in the file and how to put its running value
// back. One table, so that a key cannot be kept without being listed.
struct RestartOnlyKey {
  std::string_view key;
  bool (*keep)(Config& next, const Config& running);
};

constexpr RestartOnlyKey kRestartOnly[] = {
    // It names the stats segment the master holds and the default pidfile.
    {"name", [](Config& n, const Config& r) { return putBack(n.name, r.name); }},
    // Where tcpfork -s finds the running master.
    {"pid_file", [](Config& n, const Config& r) { return putBack(n.pidFile, r.pidFile); }},
    // It sizes the stats segment (2 x max_workers slots, for two generations).
    {"max_workers", [](Config& n, const Config& r) { return putBack(n.maxWorkers, r.maxWorkers); }},
    // The admin socket is bound once, at start.
    {"metrics.listen", [](Config& n, const Config& r) { return putBack(n.metricsListen, r.metricsListen); }},
    // Read by the admin server's access check, built at start.
    {"metrics.allow_remote",
     [](Config& n, const Config& r) { return putBack(n.metricsAllowRemote, r.metricsAllowRemote); }},
    // The agent port is bound once, at start (handed to a binary upgrade's new master).
    {"agent.listen", [](Config& n, const Config& r) { return putBack(n.agentListen, r.agentListen); }},
    {"agent.allow_remote", [](Config& n, const Config& r) { return putBack(n.agentAllowRemote, r.agentAllowRemote); }},
    // Created and held open at start, owned by the workers' user.
    {"profile.dir", [](Config& n, const Config& r) { return putBack(n.profile.dir, r.profile.dir); }},
    // The endpoint is added to the admin server at start.
    {"profile.http", [](Config& n, const Config& r) { return putBack(n.profile.http, r.profile.http); }},
    // Read by the endpoint's access check, built with it at start.
    {"profile.http_remote",
     [](Config& n, const Config& r) { return putBack(n.profile.httpRemote, r.profile.httpRemote); }},
    // Resolved once, at start; the profile directory is made theirs.
    {"user", [](Config& n, const Config& r) { return putBack(n.user, r.user); }},
    {"group", [](Config& n, const Config& r) { return putBack(n.group, r.group); }},
    // Whether the listening sockets are steered is settled at start.
    {"steering.enabled", [](Config& n, const Config& r) { return putBack(n.steering.enabled, r.steering.enabled); }},
};

}  // namespace

std::vector<std::string> restartOnlyKeys() {
  std::vector<std::string> keys;
  for (const RestartOnlyKey& k : kRestartOnly) keys.emplace_back(k.key);
  return keys;
}

ReloadPlan planReload(const Config& running, Config next) {
  ReloadPlan plan;
  for (const RestartOnlyKey& k : kRestartOnly) {
    if (k.keep(next, running)) plan.kept.emplace_back(k.key);
  }
  if (next.effectiveWorkers() > next.maxWorkers) {
    plan.refusal = fmt::format("workers {} exceeds max_workers {}", next.effectiveWorkers(), next.maxWorkers);
  }
  plan.next = std::move(next);
  return plan;
}

}  // namespace tcpfork
