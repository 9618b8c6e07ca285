#pragma once
// AdminHttp: the master's HTTP endpoint (libevent evhttp on the master loop,
// so no thread ever races the supervisor):
//   GET /metrics   Prometheus text from the MetricsCollector
//   GET /healthz   200 "ok" when every configured worker serves, else 503
//   GET /status    the stats snapshot as JSON (same document as tcpfork-stats --json)
// Owned by the Master.

#include <event2/http.h>

#include <functional>
#include <memory>
#include <string>

#include "base/unique_fd.h"
#include "master/metrics_collector.h"

namespace tcpfork {

class AdminHttp {
 public:
  struct Health {
    bool ok = false;
    std::string detail;
  };

  // Binds `address` (throws std::system_error naming it).
  AdminHttp(event_base* base, const std::string& address, const MetricsCollector& collector,
            const stats::StatsSegment& segment, std::function<Health()> health);
  ~AdminHttp();
  AdminHttp(const AdminHttp&) = delete;
  AdminHttp& operator=(const AdminHttp&) = delete;

  std::string boundAddress() const;

 private:
  static void onRequest(evhttp_request* request, void* self);
  void handle(evhttp_request* request);

  UniqueFd listener_;
  evhttp* http_ = nullptr;
  const MetricsCollector& collector_;
  const stats::StatsSegment& segment_;
  std::function<Health()> health_;
};

}  // namespace tcpfork
