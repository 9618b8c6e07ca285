#include "steering/policy.h"

namespace tcpfork::steering {

std::string_view exclusionName(Exclusion why) {
  switch (why) {
    case Exclusion::kNone: return "none";
    case Exclusion::kNotServing: return "not_serving";
    case Exclusion::kStale: return "stale";
    case Exclusion::kQueue: return "queue";
    case Exclusion::kFull: return "full";
    case Exclusion::kOverloaded: return "overloaded";
  }
  return "none";
}

Decision decide(const std::vector<WorkerView>& views, const PolicySettings& settings,
                const std::vector<Exclusion>& previous) {
  Decision d;
  d.why.reserve(views.size());
  for (size_t i = 0; i < views.size(); ++i) {
    const WorkerView& v = views[i];
    bool wasQueued = i < previous.size() && previous[i] == Exclusion::kQueue;
    uint32_t queueLimit = wasQueued ? settings.maxQueue / 2 : settings.maxQueue;
    Exclusion why = Exclusion::kNone;
    if (!v.serving) {
      why = Exclusion::kNotServing;
    } else if (v.heartbeatAgeMs > settings.staleAfterMs) {
      why = Exclusion::kStale;
    } else if (v.full) {
      why = Exclusion::kFull;
    } else if (v.acceptQueue > queueLimit) {
      why = Exclusion::kQueue;
    }
    d.why.push_back(why);
  }
  bool someoneUnloaded = false;
  for (size_t i = 0; i < views.size(); ++i) {
    someoneUnloaded = someoneUnloaded || (d.why[i] == Exclusion::kNone && !views[i].overloaded);
  }
  for (size_t i = 0; i < views.size(); ++i) {
    if (someoneUnloaded && d.why[i] == Exclusion::kNone && views[i].overloaded) d.why[i] = Exclusion::kOverloaded;
    if (d.why[i] == Exclusion::kNone) d.eligible.push_back(views[i].index);
  }
  if (d.eligible.empty()) {
    // Nobody qualifies: steering would only move the wait around, so every
    // index serving (or, if none serves, every index) takes its hash share,
    // as plain SO_REUSEPORT would.
    d.everyoneOut = true;
    for (const WorkerView& v : views) {
      if (v.serving) d.eligible.push_back(v.index);
    }
    if (d.eligible.empty()) {
      for (const WorkerView& v : views) d.eligible.push_back(v.index);
    }
  }
  return d;
}

}  // namespace tcpfork::steering
