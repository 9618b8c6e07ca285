#pragma once
// MetricsCollector: a prometheus-cpp Collectable that reads the stats segment
// at scrape time. Owned by the Master and called on its loop (the admin HTTP
// server runs there too), so it never races the master folding an exited
// worker into the retired totals. Totals are retired + live workers, so every
// counter is monotonic across restarts and reloads.

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "master/agent/agent_answer.h"
#include "master/supervise/listeners.h"
#include "master/supervise/process_table.h"
#include "stats/segment.h"
#include "steering/status.h"

namespace tcpfork {

// What only the master knows (not in the segment).
struct MasterStatus {
  unsigned workersConfigured = 0;
  std::vector<ShownWorker> workers;  // the Supervisor's, as shown (process_table.h)
  std::vector<ListenQueue> listenQueues;  // the sockets the master holds
  steering::Status steering;
  uint64_t reloadsFailed = 0;  // since this master started
  AgentCounts agentChecks{};   // agent checks answered, by answer (since this master started)
  std::string agentAddress;    // empty: agent.listen is off
  std::string agentLine;       // what a check would be answered now
};

// `text` as a HELP line of the text format (0.0.4) must carry it, which
// prometheus-cpp 1.0 leaves to us: backslash and newline escaped as \\ and
// \n, the only escapes the format knows. Whatever else is not printable UTF-8
// (a module's help is any text, and the workers' user can write any bytes
// into the segment) is spelled out as escapeForLog spells it, so Prometheus
// shows "\x1b" rather than an ESC.
std::string prometheusHelp(std::string_view text);

// tcp_server_workers{state} and /status's "workers_by_state": how many of
// `workers` are in each state, every state named (0 when none).
std::map<std::string, unsigned> workersByState(const std::vector<ShownWorker>& workers);

class MetricsCollector : public prometheus::Collectable {
 public:
  MetricsCollector(const stats::StatsSegment& segment, std::string metricNamespace,
                   std::function<MasterStatus()> masterStatus);

  std::vector<prometheus::MetricFamily> Collect() const override;
  // What only the master knows, now (also part of /status).
  MasterStatus masterStatus() const { return masterStatus_(); }
  void setNamespace(std::string metricNamespace) { namespace_ = std::move(metricNamespace); }

 private:
  const stats::StatsSegment& segment_;
  std::string namespace_;
  std::function<MasterStatus()> masterStatus_;
};

}  // namespace tcpfork
