#include "master/admin/metrics_collector.h"

#include <unistd.h>

#include <functional>
#include <limits>
#include <map>
#include <optional>

#include "base/log.h"
#include "master/admin/netstat.h"
#include "stats/process_info.h"
#include "stats/snapshot.h"

namespace tcpfork {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Every family goes through here: the one place its help is escaped.
MetricFamily family(const std::string& name, const std::string& help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = prometheusHelp(help);
  f.type = type;
  return f;
}

ClientMetric counterSample(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

ClientMetric gaugeSample(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

// A stats histogram (ns, per bucket) as Prometheus wants it (seconds, cumulative).
template <typename View>
ClientMetric histogramSample(const View& h, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < View::bounds.size(); ++i) {
    cumulative += h.buckets[i];
    m.histogram.bucket.push_back({cumulative, double(View::bounds[i]) / 1e9});
  }
  cumulative += h.buckets.back();
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = double(h.sumNs) / 1e9;
  return m;
}

void addListenFamilies(const std::string& ns, const std::vector<ListenQueue>& queues, std::vector<MetricFamily>& out) {
  MetricFamily length = family(ns + "listen_queue_length",
                               "Connections waiting in a listening socket's accept queue for its worker to accept them.",
                               MetricType::Gauge);
  MetricFamily limit = family(ns + "listen_queue_limit",
                              "The accept queue's limit (the listen backlog); past it the kernel drops handshakes.",
                              MetricType::Gauge);
  for (const auto& q : queues) {
    std::vector<ClientMetric::Label> labels = {{"listen", q.address}, {"worker", q.worker}};
    length.metric.push_back(gaugeSample(double(q.queue.length), labels));
    limit.metric.push_back(gaugeSample(double(q.queue.limit), labels));
  }
  out.push_back(std::move(length));
  out.push_back(std::move(limit));

  // Host-wide: every listener of the network namespace counts here, so the
  // series say so in a label rather than pass for tcpfork's own.
  if (auto counters = readListenCounters()) {
    auto hostCounter = [&](const char* name, const char* help, uint64_t value) {
      MetricFamily f = family(ns + name, help, MetricType::Counter);
      f.metric.push_back(counterSample(double(value), {{"scope", "host"}}));
      out.push_back(std::move(f));
    };
    hostCounter("listen_overflows_total",
                "Handshakes dropped because an accept queue was full (TcpExt ListenOverflows, every socket of the "
                "host's network namespace).",
                counters->overflows);
    hostCounter("listen_drops_total",
                "SYNs and ACKs dropped on listening sockets, overflows included (TcpExt ListenDrops, every socket of "
                "the host's network namespace).",
                counters->drops);
  }
}

void addProcessFamilies(std::vector<MetricFamily>& out) {
  auto info = stats::readProcessInfo(::getpid());
  if (!info) return;
  auto add = [&](const char* name, const char* help, MetricType type, double value) {
    MetricFamily f = family(name, help, type);
    f.metric.push_back(type == MetricType::Counter ? counterSample(value) : gaugeSample(value));
    out.push_back(std::move(f));
  };
  add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", MetricType::Counter,
      info->cpuSeconds);
  add("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge, double(info->residentBytes));
  add("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge, double(info->virtualBytes));
  add("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, double(info->openFds));
  add("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, double(info->maxFds));
  add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
      info->startTimeUnix);
}

// Whether the reuseport program steers, which workers take new connections,
// and why workers were taken out (steering/).
void addSteeringFamilies(const std::string& ns, const steering::Status& steering, std::vector<MetricFamily>& out) {
  MetricFamily active = family(ns + "steering_active",
                               "1 when the reuseport program steers new connections by worker health; 0 when they "
                               "go by SO_REUSEPORT's hash (steering off, or not permitted).",
                               MetricType::Gauge);
  active.metric.push_back(gaugeSample(steering.active ? 1 : 0));
  out.push_back(std::move(active));
  MetricFamily eligible = family(ns + "steering_eligible",
                                 "1 while the worker index takes new connections; 0 while it is out of rotation.",
                                 MetricType::Gauge);
  for (const auto& [index, in] : steering.eligible) {
    eligible.metric.push_back(gaugeSample(in ? 1 : 0, {{"worker", std::to_string(index)}}));
  }
  out.push_back(std::move(eligible));
  auto counters = [&](const char* name, const char* help, const char* label,
                      std::initializer_list<std::pair<const char*, uint64_t>> rows) {
    MetricFamily f = family(ns + name, help, MetricType::Counter);
    for (const auto& [value, n] : rows) f.metric.push_back(counterSample(double(n), {{label, value}}));
    out.push_back(std::move(f));
  };
  counters("steering_excluded_total",
           "Times a worker was taken out of rotation: its heartbeat older than stale_after (stale), its accept queue "
           "past max_queue (queue), max_connections held (full), shedding by queueing delay while another worker "
           "was not (overloaded), its socket about to close (retiring).",
           "reason",
           {{"stale", steering.excludedStale}, {"queue", steering.excludedQueue}, {"full", steering.excludedFull},
            {"overloaded", steering.excludedOverloaded}, {"retiring", steering.excludedRetiring}});
  counters("steering_decisions_total",
           "What the reuseport program did with each new connection: sent it to an eligible worker (steered), moved "
           "it off a closing listener (migrated), or left it to the kernel's hash (hashed: no worker set yet, or "
           "none selectable).",
           "decision",
           {{"steered", steering.program.steered}, {"migrated", steering.program.migrated},
            {"hashed", steering.program.unsteered}});
}

}  // namespace

std::string prometheusHelp(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t start = 0;;) {
    size_t end = text.find('\n', start);
    for (char c : escapeForLog(text.substr(start, end - start))) {
      if (c == '\\') out += '\\';
      out += c;
    }
    if (end == std::string_view::npos) return out;
    out += "\\n";
    start = end + 1;
  }
}

std::map<std::string, unsigned> workersByState(const std::vector<ShownWorker>& workers) {
  std::map<std::string, unsigned> n = {{"starting", 0}, {"serving", 0}, {"stalled", 0},
                                       {"draining", 0}, {"backoff", 0}, {"fatal", 0}};
  for (const ShownWorker& w : workers) ++n[std::string(w.state)];
  return n;
}

MetricsCollector::MetricsCollector(const stats::StatsSegment& segment, std::string metricNamespace,
                                   std::function<MasterStatus()> masterStatus)
    : segment_(segment), namespace_(std::move(metricNamespace)), masterStatus_(std::move(masterStatus)) {}

std::vector<MetricFamily> MetricsCollector::Collect() const {
  stats::Snapshot snapshot = stats::takeSnapshot(segment_);
  stats::TotalsView total = snapshot.total();
  MasterStatus master = masterStatus_();
  const std::string ns = namespace_ + "_";
  std::vector<MetricFamily> out;

  MetricFamily connected = family(ns + std::string(stats::kConnectedName), "Client connections open now.",
                                  MetricType::Gauge);
  connected.metric.push_back(gaugeSample(double(snapshot.connected())));
  out.push_back(std::move(connected));

  // Rows that share a name are one labelled family (kCounters).
  std::map<std::string_view, size_t> labelled;
  for (const auto& info : stats::kCounters) {
    std::vector<ClientMetric::Label> labels;
    if (!info.labelName.empty()) labels.push_back({std::string(info.labelName), std::string(info.labelValue)});
    ClientMetric sample = counterSample(double(total.counter(info.id)), std::move(labels));
    if (!info.labelName.empty()) {
      auto [it, fresh] = labelled.try_emplace(info.name, out.size());
      if (!fresh) {
        out[it->second].metric.push_back(std::move(sample));
        continue;
      }
    }
    MetricFamily f = family(ns + std::string(info.name), std::string(info.help), MetricType::Counter);
    f.metric.push_back(std::move(sample));
    out.push_back(std::move(f));
  }

  // A handler module's own counters, by name over retired and live workers
  // (stats/layout.h, HandlerCounter).
  for (const auto& [name, counter] : snapshot.handlerTotals()) {
    MetricFamily f = family(ns + "handler_" + name + "_total",
                            counter.help.empty() ? "Counted by the handler module." : counter.help, MetricType::Counter);
    f.metric.push_back(counterSample(double(counter.value)));
    out.push_back(std::move(f));
  }

  MetricFamily errors = family(ns + std::string(stats::kProtocolErrorsName),
                               "Connections closed for a malformed frame, by reason.", MetricType::Counter);
  for (size_t i = 0; i < protocol::kDecodeErrorCount; ++i) {
    errors.metric.push_back(counterSample(
        double(total.protocolErrors[i]), {{"reason", std::string(protocol::decodeErrorName(protocol::DecodeError(i)))}}));
  }
  out.push_back(std::move(errors));

  MetricFamily latency = family(ns + std::string(stats::kRequestDurationName),
                                std::string(stats::kRequestDurationHelp), MetricType::Histogram);
  latency.metric.push_back(histogramSample(total.requestDuration));
  out.push_back(std::move(latency));
  MetricFamily handler = family(ns + std::string(stats::kHandlerDurationName),
                                std::string(stats::kHandlerDurationHelp), MetricType::Histogram);
  handler.metric.push_back(histogramSample(total.handlerDuration));
  out.push_back(std::move(handler));
  MetricFamily queueDelay = family(ns + std::string(stats::kQueueDelayName), std::string(stats::kQueueDelayHelp),
                                   MetricType::Histogram);
  queueDelay.metric.push_back(histogramSample(total.queueDelay));
  out.push_back(std::move(queueDelay));
  addListenFamilies(ns, master.listenQueues, out);
  addSteeringFamilies(ns, master.steering, out);

  // From the Supervisor's rows, not the slots: a worker whose loop stopped
  // still says "serving" in its slot.
  MetricFamily workers = family(ns + "workers",
                                "Worker processes by state: starting, serving, stalled (serving, but its heartbeat is "
                                "older than steering.stale_after), draining; and worker indices waiting to be "
                                "restarted: backoff (after crashes), fatal (after the worker's fatal exit code).",
                                MetricType::Gauge);
  for (const auto& [state, n] : workersByState(master.workers)) {
    workers.metric.push_back(gaugeSample(double(n), {{"state", state}}));
  }
  out.push_back(std::move(workers));

  auto single = [&](const std::string& name, const std::string& help, MetricType type, double value) {
    MetricFamily f = family(ns + name, help, type);
    f.metric.push_back(type == MetricType::Counter ? counterSample(value) : gaugeSample(value));
    out.push_back(std::move(f));
  };
  single("workers_configured", "Worker processes the master keeps running.", MetricType::Gauge,
         master.workersConfigured);
  single("worker_restarts_total", "Workers restarted after an unexpected exit or a stalled heartbeat.",
         MetricType::Counter, double(snapshot.workerRestarts));
  single("reloads_total", "Reloads completed (a new generation serving).", MetricType::Counter,
         double(snapshot.reloads));
  single("reloads_failed_total",
         "Reloads that left the running generation serving: the config was refused, or the new generation did not "
         "serve.",
         MetricType::Counter, double(master.reloadsFailed));
  MetricFamily agent = family(ns + "agent_checks_total",
                              "Agent checks (agent.listen) this master answered, by answer: up, drain, down.",
                              MetricType::Counter);
  for (size_t i = 0; i < kAgentAnswerKinds; ++i) {
    agent.metric.push_back(counterSample(double(master.agentChecks[i]),
                                         {{"answer", std::string(agentAnswerName(AgentAnswerKind(i)))}}));
  }
  out.push_back(std::move(agent));
  MetricFamily recycles = family(ns + "worker_recycles_total",
                                 "Workers the master replaced for a limit: max_requests (requests), max_rss (rss), "
                                 "max_lifetime (lifetime), gracefully; max_rss_hard (rss_hard), killed.",
                                 MetricType::Counter);
  for (const auto& reason : stats::kRecycleReasons) {
    recycles.metric.push_back(
        counterSample(double(snapshot.recycles[size_t(reason.id)]), {{"reason", std::string(reason.name)}}));
  }
  out.push_back(std::move(recycles));
  single("generation", "Current worker generation (1 + completed reloads).", MetricType::Gauge,
         double(snapshot.generation));
  double profiling = 0;
  for (const auto& w : snapshot.workers) profiling += w.profiling ? 1 : 0;
  single("auto_profiles_total", "CPU profiles started by the master's auto-profiler.", MetricType::Counter,
         double(snapshot.autoProfiles));
  single("profiling_active", "Workers whose CPU profiler is running.", MetricType::Gauge, profiling);

  // Per worker process: labelled by index and generation, and by pid, because
  // one index can have two processes of one generation at once (an old one
  // still draining after TTOU while TTIN started a new one). A new process is
  // a new series, so none of these counters ever goes down.
  // The counters kCounters marks as per worker, then what is not a counter.
  struct PerWorker {
    std::string name;
    std::string help;
    MetricType type;
    std::function<double(const stats::WorkerView&, const std::optional<stats::ProcessInfo>&)> value;
    MetricFamily family;
  };
  std::vector<PerWorker> perWorker;
  for (const auto& info : stats::kCounters) {
    if (info.workerHelp.empty()) continue;  // (no labelled row has one)
    perWorker.push_back({"worker_" + std::string(info.name), std::string(info.workerHelp), MetricType::Counter,
                         [id = info.id](const auto& w, const auto&) { return double(w.totals.counter(id)); }, {}});
  }
  perWorker.push_back({"worker_client_connected", "Connections open in this worker process.", MetricType::Gauge,
                       [](const auto& w, const auto&) { return double(w.connectionsCurrent); }, {}});
  perWorker.push_back({"worker_cpu_seconds_total", "User and system CPU time of this worker process.",
                       MetricType::Counter, [](const auto&, const auto& info) { return info ? info->cpuSeconds : 0.0; },
                       {}});
  perWorker.push_back({"worker_resident_memory_bytes", "Resident memory of this worker process.", MetricType::Gauge,
                       [](const auto&, const auto& info) { return info ? double(info->residentBytes) : 0.0; }, {}});
  perWorker.push_back({"worker_heartbeat_age_seconds",
                       "Seconds since this worker's loop last ran its timer (a stopped or hung loop grows until "
                       "worker_timeout).",
                       MetricType::Gauge, [](const auto& w, const auto&) { return double(w.heartbeatAgeMs) / 1000.0; },
                       {}});
  perWorker.push_back({"overloaded",
                       "1 while this worker sheds requests by queueing delay (overload.target), else 0.",
                       MetricType::Gauge, [](const auto& w, const auto&) { return w.overloaded ? 1.0 : 0.0; }, {}});
  perWorker.push_back({"worker_start_time_seconds", "Start time of this worker process since the epoch.",
                       MetricType::Gauge, [](const auto& w, const auto&) { return double(w.startedAtUnixMs) / 1000.0; },
                       {}});
  for (auto& p : perWorker) p.family = family(ns + p.name, p.help, p.type);
  MetricFamily loopLag = family(ns + std::string(stats::kLoopLagName),
                                "How late this worker's loop ran its 100 ms timer (it runs nothing else meanwhile).",
                                MetricType::Histogram);
  for (const auto& w : snapshot.workers) {
    std::vector<ClientMetric::Label> labels = {{"generation", std::to_string(w.generation)},
                                               {"pid", std::to_string(w.pid)},
                                               {"worker", std::to_string(w.index)}};
    auto info = stats::readProcessInfo(w.pid);
    for (auto& p : perWorker) {
      double v = p.value(w, info);
      p.family.metric.push_back(p.type == MetricType::Counter ? counterSample(v, labels) : gaugeSample(v, labels));
    }
    loopLag.metric.push_back(histogramSample(w.loopLag, labels));
  }
  for (auto& p : perWorker) out.push_back(std::move(p.family));
  out.push_back(std::move(loopLag));

  std::map<std::string, MetricFamily> handlerPerWorker;
  for (const auto& w : snapshot.workers) {
    for (const auto& counter : w.handlerCounters) {
      auto [it, fresh] = handlerPerWorker.try_emplace(counter.name);
      if (fresh) {
        it->second = family(ns + "worker_handler_" + counter.name + "_total",
                            (counter.help.empty() ? "Counted by the handler module" : counter.help) + " (this worker process).",
                            MetricType::Counter);
      }
      it->second.metric.push_back(counterSample(double(counter.value), {{"generation", std::to_string(w.generation)},
                                                                         {"pid", std::to_string(w.pid)},
                                                                         {"worker", std::to_string(w.index)}}));
    }
  }
  for (auto& [name, f] : handlerPerWorker) out.push_back(std::move(f));

  addProcessFamilies(out);
  return out;
}

}  // namespace tcpfork
