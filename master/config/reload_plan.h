#pragma once
// What a HUP may change. The keys the running master built something from
// at start (restartOnlyKeys()) are put back as they run now, and named so
// that the log can say so; everything else of the new file applies. A pure
// function of two configs, so every rule is unit-tested.

#include <string>
#include <vector>

#include "master/config/config.h"

namespace tcpfork {

struct ReloadPlan {
  Config next;                    // what the new generation runs with
  std::vector<std::string> kept;  // restart-only keys the file changed, put back
  std::string refusal;            // non-empty: the reload cannot go ahead, and why
};

ReloadPlan planReload(const Config& running, Config next);

// The keys a reload keeps at their running values, dotted as in the file,
// in the order the docs list them: the one list planReload() keeps by, and
// the one docs/reload-and-upgrade.md, the man page and deploy/tcpfork.yaml are tested against.
std::vector<std::string> restartOnlyKeys();

}  // namespace tcpfork
