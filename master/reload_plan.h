#pragma once
// What a HUP may change. The keys that change only on restart (the instance
// name, the pidfile, max_workers, the admin address, the profile directory
// and endpoint, the workers' user and group) are put back as they run now,
// and named so that the log can say so; everything else of the new file
// applies. A pure function of two configs, so every rule is unit-tested.

#include <string>
#include <vector>

#include "master/config.h"

namespace tcpfork {

struct ReloadPlan {
  Config next;                    // what the new generation runs with
  std::vector<std::string> kept;  // restart-only keys the file changed, put back
  std::string refusal;            // non-empty: the reload cannot go ahead, and why
};

ReloadPlan planReload(const Config& running, Config next);

}  // namespace tcpfork
