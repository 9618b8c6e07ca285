#pragma once
// The JSON form of a Snapshot: served as the master's /status and printed by
// `tcpfork-stats --json`, so scripts read the same document either way.
// Counter keys are the table's short keys (stats/metrics.h).

#include <nlohmann/json.hpp>

#include "stats/snapshot.h"

namespace tcpfork::stats {

nlohmann::json totalsJson(const TotalsView& totals);
nlohmann::json snapshotJson(const Snapshot& snapshot);

}  // namespace tcpfork::stats
