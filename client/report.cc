#include "client/report.h"

#include <fmt/format.h>

namespace tcpfork::client {
namespace {

struct Quantile {
  const char* name;
  double q;
};
constexpr Quantile kQuantiles[] = {{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}};

std::string withCommas(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string quantiles(const HistogramSnapshot& h) {
  std::string out;
  for (const auto& q : kQuantiles) out += fmt::format("{} {}  ", q.name, formatNanos(h.percentile(q.q)));
  return out + fmt::format("max {}  mean {}", formatNanos(h.max()), formatNanos(uint64_t(h.mean())));
}

nlohmann::json latencyJson(const HistogramSnapshot& h) {
  nlohmann::json latency;
  for (const auto& q : kQuantiles) latency[q.name] = h.percentile(q.q);
  latency["max"] = h.max();
  latency["mean"] = h.mean();
  latency["count"] = h.count();
  // The whole distribution, for plots (bench/plots.py draws its CDF).
  nlohmann::json buckets = nlohmann::json::array();
  h.forEachBucket([&](uint64_t upTo, uint64_t count) { buckets.push_back({upTo, count}); });
  latency["buckets"] = std::move(buckets);
  return latency;
}

}  // namespace

std::string formatNanos(uint64_t ns) {
  if (ns < 10'000) return fmt::format("{} ns", ns);
  if (ns < 10'000'000) return fmt::format("{:.1f} us", ns / 1e3);
  if (ns < 10'000'000'000) return fmt::format("{:.2f} ms", ns / 1e6);
  return fmt::format("{:.2f} s", ns / 1e9);
}

void printProgressLine(FILE* out, double elapsedSeconds, const Progress& now, const Progress& previous) {
  HistogramSnapshot interval = now.latencyNs.since(previous.latencyNs);
  // Busy answers only once the server gives any: a run without them reads as before.
  std::string busy = now.busy > 0 ? fmt::format("  busy/s {}", withCommas(now.busy - previous.busy)) : "";
  fmt::print(out, "[{:6.1f}s] acks/s {:>12}  p99 {:>10}  in-flight {:>9}  errors {}{}\n", elapsedSeconds,
             withCommas(now.acked - previous.acked), formatNanos(interval.percentile(0.99)),
             withCommas(now.sent - now.acked), now.errors, busy);
  std::fflush(out);
}

void printReport(FILE* out, const BenchOptions& o, const BenchResult& r) {
  std::string mode = o.rate > 0 ? fmt::format("open loop at {} req/s", withCommas(uint64_t(o.rate))) : "closed loop";
  fmt::print(out, "bench {}: {} connections x window {}, {} thread(s), {}-byte payload, {}\n", o.addr, o.connections,
             o.window, o.threads, o.payloadBytes, mode);
  fmt::print(out, "  requests sent    {}\n", withCommas(r.sent));
  fmt::print(out, "  acks received    {}  ({} acks/s over {:.2f} s)\n", withCommas(r.acked),
             withCommas(uint64_t(r.acksPerSecond())), r.measuredSeconds);
  fmt::print(out, "  goodput          {} acks/s with result 0\n", withCommas(uint64_t(r.goodputPerSecond())));
  fmt::print(out, "  busy acks        {}  (result 255: answered, not processed; not errors)\n", withCommas(r.busy));
  fmt::print(out, "  latency          {}\n", quantiles(r.latencyNs()));
  // Without busy answers every ack was admitted: the split would repeat the line above.
  if (r.busy > 0) {
    const HistogramSnapshot& admitted = r.latencyAdmittedNs;
    fmt::print(out, "  latency admitted {}\n", admitted.count() ? quantiles(admitted) : "none: every ack was busy");
    fmt::print(out, "  latency busy     {}\n", quantiles(r.latencyBusyNs));
  }
  std::string byKind;
  for (size_t e = 0; e < kAckErrorCount; ++e) {
    byKind += fmt::format("{}{} {}", e ? ", " : "", ackErrorName(AckError(e)), r.errors[e]);
  }
  fmt::print(out, "  ack errors       {}  ({})\n", r.totalErrors(), byKind);
  fmt::print(out, "  unacked at end   {}\n", withCommas(r.unackedAtEnd));
  std::string reset = r.connectsReset ? fmt::format(" ({} reset by the server after the handshake)", r.connectsReset) : "";
  fmt::print(out, "  connections      {} failed to connect{}, {} closed by server ({} acks lost on them)\n",
             r.connectsFailed, reset, r.connectionsClosedByServer, withCommas(r.unackedOnClosedConnections));
}

nlohmann::json toJson(const BenchOptions& o, const BenchResult& r) {
  nlohmann::json errors;
  for (size_t e = 0; e < kAckErrorCount; ++e) errors[std::string(ackErrorName(AckError(e)))] = r.errors[e];
  return {
      {"options",
       {{"addr", o.addr},
        {"connections", o.connections},
        {"window", o.window},
        {"threads", o.threads},
        {"payload_bytes", o.payloadBytes},
        {"duration_s", o.durationSeconds},
        {"requests", o.requests},
        {"rate", o.rate}}},
      {"sent", r.sent},
      {"acked", r.acked},
      {"busy", r.busy},
      {"acks_per_sec", r.acksPerSecond()},
      {"goodput_per_sec", r.goodputPerSecond()},
      {"measured_s", r.measuredSeconds},
      {"elapsed_s", r.elapsedSeconds},
      {"latency_ns", latencyJson(r.latencyNs())},
      {"latency_admitted_ns", latencyJson(r.latencyAdmittedNs)},
      {"latency_busy_ns", latencyJson(r.latencyBusyNs)},
      {"errors", errors},
      {"errors_total", r.totalErrors()},
      {"unacked_at_end", r.unackedAtEnd},
      {"connects_failed", r.connectsFailed},
      {"connects_reset", r.connectsReset},
      {"closed_by_server", r.connectionsClosedByServer},
      {"unacked_on_closed", r.unackedOnClosedConnections},
  };
}

}  // namespace tcpfork::client
