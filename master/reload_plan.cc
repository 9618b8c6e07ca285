#include "master/reload_plan.h"

#include <fmt/format.h>

namespace tcpfork {

ReloadPlan planReload(const Config& running, Config next) {
  ReloadPlan plan;
  auto keep = [&](const char* key, auto& nextValue, const auto& current) {
    if (nextValue != current) {
      plan.kept.emplace_back(key);
      nextValue = current;
    }
  };
  keep("name", next.name, running.name);
  keep("pid_file", next.pidFile, running.pidFile);
  keep("max_workers", next.maxWorkers, running.maxWorkers);
  keep("metrics.listen", next.metricsListen, running.metricsListen);
  keep("profile.dir", next.profile.dir, running.profile.dir);
  keep("profile.http", next.profile.http, running.profile.http);
  keep("user", next.user, running.user);
  keep("group", next.group, running.group);
  keep("steering.enabled", next.steering.enabled, running.steering.enabled);
  if (next.effectiveWorkers() > next.maxWorkers) {
    plan.refusal = fmt::format("workers {} exceeds max_workers {}", next.effectiveWorkers(), next.maxWorkers);
  }
  plan.next = std::move(next);
  return plan;
}

}  // namespace tcpfork
