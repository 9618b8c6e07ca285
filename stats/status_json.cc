#include "stats/status_json.h"

#include <algorithm>
#include <chrono>

#include "stats/process_info.h"

namespace tcpfork::stats {

namespace {

// The quantiles are since the process started; "buckets" (one count per
// bound of "bounds_ns", then +Inf) let a reader take two documents apart
// and estimate a quantile of the interval between them, as the status page
// does.
template <typename View>
nlohmann::json histogramJson(const View& h) {
  return {{"count", h.count()},
          {"sum_ns", h.sumNs},
          {"p50_ns", h.quantileNs(0.5)},
          {"p99_ns", h.quantileNs(0.99)},
          {"bounds_ns", View::bounds},
          {"buckets", h.buckets}};
}

// {"requests": n, ...}: workers the master replaced, by reason.
nlohmann::json recycles(const Snapshot& s) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& reason : kRecycleReasons) j[std::string(reason.name)] = s.recycles[size_t(reason.id)];
  return j;
}

}  // namespace

nlohmann::json totalsJson(const TotalsView& t) {
  nlohmann::json j;
  for (const auto& info : kCounters) j[std::string(info.key)] = t.counter(info.id);
  nlohmann::json errors;
  for (size_t i = 0; i < protocol::kDecodeErrorCount; ++i) {
    errors[std::string(protocol::decodeErrorName(protocol::DecodeError(i)))] = t.protocolErrors[i];
  }
  j["protocol_errors"] = errors;
  // "latency" is request_duration_seconds (receive to ack sent), the one
  // clients feel; "handler_latency" the handler's share of it.
  j["latency"] = histogramJson(t.requestDuration);
  j["handler_latency"] = histogramJson(t.handlerDuration);
  j["queue_delay"] = histogramJson(t.queueDelay);
  return j;
}

// {"name": value}: a handler module's counters.
nlohmann::json handlerJson(const std::map<std::string, HandlerCounterView>& counters) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, c] : counters) j[name] = c.value;
  return j;
}

nlohmann::json snapshotJson(const Snapshot& s) {
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : s.workers) {
    nlohmann::json j = {
        {"slot", w.slot},
        {"pid", w.pid},
        {"state", std::string(shownState(w.state, w.heartbeatAgeMs, s.staleAfterMs))},
        {"generation", w.generation},
        {"index", w.index},
        {"uptime_s", 0.0},
        {"connections", w.connectionsCurrent},
        {"heartbeat_age_ms", w.heartbeatAgeMs},
        {"loop_lag", histogramJson(w.loopLag)},
        {"profiling", w.profiling},
        {"overloaded", w.overloaded},
        {"totals", totalsJson(w.totals)},
        {"handler", handlerJson(sumByName(w.handlerCounters))},
    };
    if (auto info = readProcessInfo(w.pid)) {
      j["uptime_s"] = info->uptimeSeconds;
      j["cpu_seconds"] = info->cpuSeconds;
      j["resident_bytes"] = info->residentBytes;
    }
    workers.push_back(j);
  }
  auto master = readProcessInfo(s.masterPid);
  return {
      {"master_pid", s.masterPid},
      {"master_uptime_s", master ? master->uptimeSeconds : 0.0},
      {"generation", s.generation},
      {"worker_restarts", s.workerRestarts},
      {"worker_recycles", recycles(s)},
      {"reloads", s.reloads},
      {"connections", s.connected()},
      {"totals", totalsJson(s.total())},
      {"handler", handlerJson(s.handlerTotals())},
      {"workers", workers},
  };
}

}  // namespace tcpfork::stats
