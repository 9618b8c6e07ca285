#pragma once
// AdminHttp: the master's HTTP endpoint (libevent evhttp on the master loop,
// so no thread ever races the supervisor):
//   GET /          the live status page (master/admin/status_page.html), which polls /status
//   GET /metrics   Prometheus text from the MetricsCollector
//   GET /healthz   200 "ok" when every configured worker serves, else 503
//   GET /status    the stats snapshot as JSON (the document tcpfork-stats --json
//                  prints), plus what only the master knows: the accept queues
//                  and the number of workers configured
//   POST (or GET) /debug/pprof/profile?seconds=N&worker=K, /debug/worker/K/pprof/profile?seconds=N
//                  a worker's CPU profile, when profile.http is on
//   GET /debug/pprof/heap?worker=K, /debug/worker/K/pprof/heap   its sampled heap, likewise
//   GET or POST /debug/pprof/symbol, /debug/worker/K/pprof/symbol
//                  the pprof tools' symbol protocol for those profiles
//   GET /debug/pprof/cmdline, /debug/worker/K/pprof/cmdline   the program's name
// Every request must name this machine as its host, and a profile start or
// symbol request must come as the pprof tools or a same-origin POST send it
// (AdminAccess); the other paths take GET and HEAD only. Only a symbol
// request carries a body (at most PprofEndpoint::kMaxSymbolRequestBytes; a
// body on any other path is answered 413), and every request at most
// kMaxHeaderBytes of headers; connections are bounded in number and time by
// AdminConnections. Owned by the Master.

#include <event2/http.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/unique_fd.h"
#include "master/admin/admin_access.h"
#include "master/admin/admin_connections.h"
#include "master/admin/metrics_collector.h"

namespace tcpfork {

class AdminHttp {
 public:
  struct Health {
    bool ok = false;
    std::string detail;
  };

  // The request line and headers together; a GET needs a few hundred bytes.
  static constexpr size_t kMaxHeaderBytes = 16 * 1024;

  // Binds `address` (throws std::system_error naming it), or serves
  // `inherited`, the socket handed over by the master this one upgrades.
  // At most `maxConnections` are open at once (see AdminConnections).
  // `anyHost` (metrics.allow_remote) serves every Host (see AdminAccess).
  AdminHttp(event_base* base, const std::string& address, const MetricsCollector& collector,
            const stats::StatsSegment& segment, std::function<Health()> health, unsigned maxConnections,
            bool anyHost, UniqueFd inherited = {});
  ~AdminHttp();
  AdminHttp(const AdminHttp&) = delete;
  AdminHttp& operator=(const AdminHttp&) = delete;

  std::string boundAddress() const;
  // How many connections may be open at once.
  unsigned connectionLimit() const { return connections_->limit(); }
  // The listening socket, to hand to a new master on a binary upgrade.
  int listenerFd() const { return listener_.get(); }
  // Leaves the shared admin socket to the new master after a binary upgrade,
  // so that a draining old master's 503 never answers a health probe.
  void stopAccepting();
  // Serves /debug/pprof/PAGE?worker=K and /debug/worker/K/pprof/PAGE (the
  // form google-pprof builds) through `handler` (unset: 404).
  enum class PprofPage { kProfile, kHeap, kSymbol, kCmdline };
  using PprofHandler = std::function<void(evhttp_request*, PprofPage page, std::optional<unsigned> worker)>;
  // The largest body a request may have: a symbol request's.
  static constexpr size_t kMaxBodyBytes = 320 * 1024;
  void setPprofHandler(PprofHandler handler) { pprof_ = std::move(handler); }
  // For a handler that replies later: `onClose` runs if the client goes
  // first, and the connection is not closed to make room meanwhile.
  void watchClose(evhttp_request* request, std::function<void()> onClose) {
    connections_->watchClose(request, std::move(onClose));
  }

 private:
  static void onRequest(evhttp_request* request, void* self);
  void handle(evhttp_request* request);
  nlohmann::json status() const;

  UniqueFd listener_;
  evhttp* http_ = nullptr;
  std::unique_ptr<AdminConnections> connections_;  // before http_ is freed
  AdminAccess access_;
  evhttp_bound_socket* bound_ = nullptr;
  const MetricsCollector& collector_;
  const stats::StatsSegment& segment_;
  std::function<Health()> health_;
  PprofHandler pprof_;
};

}  // namespace tcpfork
