#pragma once
// The one table of what workers count. It sizes the Slot's counter array
// (and so the layout version, see layout.h), and the master's exporter (totals
// and per worker), /status and tcpfork-stats (columns and totals) all walk
// it: a counter is added here and at the line that counts it, nothing else.
//
// Names are Prometheus suffixes; the exporter prefixes the configured
// namespace (default "tcp_server", so "req_recv_total" is exported as
// tcp_server_req_recv_total, the name the reference dashboards query).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/frame.h"

namespace tcpfork::stats {

enum class Counter : uint8_t {
  kConnectionsAccepted,
  kConnectionsRejected,
  kRequestsReceived,
  kResponsesSent,
  kBytesReceived,
  kBytesSent,
  kIdleTimeouts,
  kAcceptErrors,
  kHandlerCompletionsDropped,
  kHandlerInvalidResults,
  kConnectionsShedMemory,
  kRequestsShedQueueDelay,
  kCount,  // not a counter: how many there are
};
inline constexpr size_t kCounterCount = size_t(Counter::kCount);

struct CounterInfo {
  Counter id;
  std::string_view name;  // Prometheus name without the namespace
  std::string_view key;   // short key for /status JSON and tcpfork-stats
  std::string_view help;
  // Also exported per worker process, as "worker_" + name with this help;
  // empty: the total only.
  std::string_view workerHelp = {};
  // tcpfork-stats shows its rate per worker under this heading; empty: in
  // the totals line only.
  std::string_view column = {};
  // One series of a labelled family: rows that share a name are exported as
  // one family, each with its label (empty: the family has no labels).
  std::string_view labelName = {};
  std::string_view labelValue = {};
};

inline constexpr std::array<CounterInfo, kCounterCount> kCounters = {{
    {Counter::kConnectionsAccepted, "connections_accepted_total", "accepted", "Connections accepted by workers."},
    {Counter::kConnectionsRejected, "connections_rejected_total", "rejected",
     "Connections closed at once because a worker was at max_connections."},
    {Counter::kRequestsReceived, "req_recv_total", "requests", "Requests (Conn and Submit frames) received.",
     "Requests received by this worker process.", "req/s"},
    {Counter::kResponsesSent, "rsp_send_total", "responses", "Acks (ConnAck and SubmitAck frames) queued to clients.",
     "Acks queued by this worker process."},
    {Counter::kBytesReceived, "bytes_received_total", "bytes_in", "Bytes read from client sockets.",
     "Bytes read by this worker process.", "in B/s"},
    {Counter::kBytesSent, "bytes_sent_total", "bytes_out", "Bytes written to client sockets.",
     "Bytes written by this worker process.", "out B/s"},
    {Counter::kIdleTimeouts, "idle_timeouts_total", "idle_timeouts",
     "Connections closed after idle_timeout without traffic."},
    {Counter::kAcceptErrors, "accept_errors_total", "accept_errors",
     "accept() failures such as EMFILE (accepting pauses 100 ms after each)."},
    {Counter::kHandlerCompletionsDropped, "handler_completions_dropped_total", "completions_dropped",
     "Pending requests a handler module completed after their connection had closed (no ack sent)."},
    {Counter::kHandlerInvalidResults, "handler_invalid_results_total", "invalid_results",
     "Requests whose handler module's handle() returned neither 0..255 nor TCPFORK_PENDING (acked with result 254)."},
    {Counter::kConnectionsShedMemory, "connections_shed_total", "shed_memory",
     "Connections a worker closed to stay within a limit (reason=memory: max_buffered_bytes, the biggest first).",
     "", "", "reason", "memory"},
    {Counter::kRequestsShedQueueDelay, "requests_shed_total", "shed",
     "Requests answered with result 255 (busy) without reaching the handler (reason=queue_delay: the worker was "
     "overloaded and the request had waited over twice overload.target).",
     "", "shed/s", "reason", "queue_delay"},
}};

// Row i describes counter i: the table is indexed by the enum.
constexpr bool tableInEnumOrder() {
  for (size_t i = 0; i < kCounters.size(); ++i) {
    if (size_t(kCounters[i].id) != i) return false;
  }
  return true;
}
static_assert(tableInEnumOrder(), "kCounters must list the counters in the order of enum Counter");

constexpr size_t index(Counter c) { return static_cast<size_t>(c); }

// The gauge of open connections (the reference dashboards' client_connected).
inline constexpr std::string_view kConnectedName = "client_connected";
inline constexpr std::string_view kProtocolErrorsName = "protocol_errors_total";

// The histograms, bucket upper bounds in ns (+Inf is added past the last).
//
// request_duration_seconds: from the kernel's receive timestamp of the read
// that completed a request frame to its ack handed to the kernel (send), so
// time spent in the socket and behind a busy or stopped loop is counted.
// Counted once an ack is sent; an ack lost with its connection is not.
inline constexpr std::array<uint64_t, 20> kRequestBoundsNs = {
    10'000,        25'000,        50'000,        100'000,       250'000,         500'000,         1'000'000,
    2'500'000,     5'000'000,     10'000'000,    25'000'000,    50'000'000,      100'000'000,     250'000'000,
    500'000'000,   1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000,  30'000'000'000,
};
inline constexpr std::string_view kRequestDurationName = "request_duration_seconds";
inline constexpr std::string_view kRequestDurationHelp =
    "Time from the kernel's receive timestamp of the bytes that completed a request to its ack handed to the kernel.";

// handler_duration_seconds: from a run of frames decoded to their acks
// queued, each request of the run counted with the run's time (a deferred
// ack: until the module completed it). What the handler costs, for module
// authors; blind to any wait before the read.
inline constexpr std::array<uint64_t, 18> kHandlerBoundsNs = {
    1'000,     2'500,     5'000,      10'000,     25'000,     50'000,      100'000,     250'000,       500'000,
    1'000'000, 2'500'000, 5'000'000, 10'000'000, 25'000'000, 50'000'000, 100'000'000, 250'000'000, 1'000'000'000,
};
inline constexpr std::string_view kHandlerDurationName = "handler_duration_seconds";
inline constexpr std::string_view kHandlerDurationHelp =
    "Time from a run of request frames decoded to their acks queued (a deferred ack: to its completion).";

// worker_loop_lag_seconds: how late each worker's loop ran its periodic
// timer (kLoopTick). Normal is well under a millisecond; a busy, blocked or
// stopped loop shows here once it runs again (the heartbeat age shows it
// while it does not).
inline constexpr std::array<uint64_t, 14> kLoopLagBoundsNs = {
    1'000'000,   2'500'000,     5'000'000,     10'000'000,    25'000'000,     50'000'000,     100'000'000,
    250'000'000, 500'000'000,   1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000, 30'000'000'000,
};
// queue_delay_seconds: from the kernel's receive timestamp of the bytes that
// completed a request to its dispatch (handed to the handler, or shed): the
// time it waited in the socket and behind the requests before it. Overload
// shedding judges this delay (overload.target); request_duration_seconds
// adds the handler's time and the send. Recorded by the LoadShedder, so only
// while overload.shed is on: with it off the frame loop pays nothing for it.
inline constexpr std::array<uint64_t, 18> kQueueDelayBoundsNs = {
    10'000,      25'000,        50'000,        100'000,       250'000,       500'000,
    1'000'000,   2'500'000,     5'000'000,     10'000'000,    25'000'000,    50'000'000,
    100'000'000, 250'000'000,   500'000'000,   1'000'000'000, 5'000'000'000, 30'000'000'000,
};
inline constexpr std::string_view kQueueDelayName = "queue_delay_seconds";
inline constexpr std::string_view kQueueDelayHelp =
    "Time from the kernel's receive timestamp of the bytes that completed a request to its dispatch (handed to the "
    "handler, or shed); recorded while overload.shed is on.";

inline constexpr uint64_t kLoopTickNs = 100'000'000;
inline constexpr std::string_view kLoopLagName = "worker_loop_lag_seconds";

}  // namespace tcpfork::stats
