#include "master/admin/admin_http.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <regex>
#include <system_error>

#include "base/socket.h"
#include "master/admin/http_reply.h"
#include "master/admin/status_page.h"
#include "stats/status_json.h"

namespace tcpfork {

AdminHttp::AdminHttp(event_base* base, const std::string& address, const MetricsCollector& collector,
                     const stats::StatsSegment& segment, std::function<Health()> health, unsigned maxConnections,
                     bool anyHost, UniqueFd inherited)
    : listener_(inherited ? std::move(inherited) : listenTcp(parseAddress(address), {.backlog = 128, .reusePort = false})),
      http_(evhttp_new(base)),
      access_(localAddress(listener_.get()), anyHost),
      collector_(collector),
      segment_(segment),
      health_(std::move(health)) {
  if (!http_) throw std::system_error(ENOMEM, std::generic_category(), "evhttp_new()");
  // POST only to start a profile (AdminAccess), checked per path below.
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
  // evhttp buffers whatever a request announces: a body of Content-Length
  // 100000000000, or a header line that never ends, would grow the master
  // without limit. Only a symbol request has a body; evhttp's limit is one
  // for every path, so handle() refuses a body elsewhere.
  evhttp_set_max_headers_size(http_, ev_ssize_t(kMaxHeaderBytes));
  evhttp_set_max_body_size(http_, ev_ssize_t(kMaxBodyBytes));
  evhttp_set_gencb(http_, &AdminHttp::onRequest, this);
  connections_ = std::make_unique<AdminConnections>(base, http_, maxConnections);
  // A slow or stuck scraper must not hold the master's loop resources forever.
  evhttp_set_timeout(http_, 10);
  bound_ = evhttp_accept_socket_with_handle(http_, listener_.get());
  if (!bound_) {
    connections_.reset();
    evhttp_free(http_);
    throw std::system_error(EINVAL, std::generic_category(), "evhttp_accept_socket(" + address + ")");
  }
  connections_->attach(evhttp_bound_socket_get_listener(bound_));
}

AdminHttp::~AdminHttp() {
  connections_.reset();
  // evhttp closes the sockets it accepted on; our UniqueFd must not close it twice.
  evhttp_free(http_);
  listener_.release();
}

std::string AdminHttp::boundAddress() const { return localAddress(listener_.get()).toString(); }

void AdminHttp::stopAccepting() {
  if (!bound_) return;
  // Frees the listener and closes our copy of the socket; requests already
  // accepted are still answered.
  connections_->detach();
  evhttp_del_accept_socket(http_, bound_);
  bound_ = nullptr;
  listener_.release();
}

void AdminHttp::onRequest(evhttp_request* request, void* self) {
  try {
    static_cast<AdminHttp*>(self)->handle(request);
  } catch (const std::exception& e) {
    spdlog::error("admin HTTP: {}", e.what());
    sendReply(request, 500, "Internal Server Error", "text/plain", std::string(e.what()) + "\n");
  }
}

namespace {

void refuse(evhttp_request* request, const AdminAccess::Refusal& refusal) {
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  if (refusal.allow) evhttp_add_header(headers, "Allow", refusal.allow);
  // The body may quote what the peer sent: never to be taken for HTML.
  evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
  sendReply(request, refusal.code, refusal.reason, "text/plain; charset=utf-8", refusal.body);
}

// Whether `path` is a pprof page, which, and the worker it names (else the query's).
struct PprofPath {
  bool matched = false;
  AdminHttp::PprofPage page = AdminHttp::PprofPage::kProfile;
  std::optional<unsigned> worker;
};

PprofPath pprofPath(const std::string& path) {
  static const std::regex kPath(R"(/debug(?:/worker/(\d{1,4}))?/pprof/(profile|heap|symbol|cmdline))");
  std::smatch m;
  if (!std::regex_match(path, m, kPath)) return {};
  auto page = m[2] == "profile" ? AdminHttp::PprofPage::kProfile
              : m[2] == "heap"  ? AdminHttp::PprofPage::kHeap
              : m[2] == "symbol" ? AdminHttp::PprofPage::kSymbol
                                 : AdminHttp::PprofPage::kCmdline;
  return {true, page, m[1].matched ? std::optional<unsigned>(std::stoul(m[1])) : std::nullopt};
}

}  // namespace

void AdminHttp::handle(evhttp_request* request) {
  connections_->onRequest(request);
  if (auto refusal = access_.checkHost(request)) {
    refuse(request, *refusal);
    return;
  }
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  const char* rawPath = uri ? evhttp_uri_get_path(uri) : nullptr;
  std::string path = rawPath && *rawPath ? rawPath : "/";
  PprofPath pprof = pprof_ ? pprofPath(path) : PprofPath{};
  if (pprof.page != PprofPage::kSymbol && evbuffer_get_length(evhttp_request_get_input_buffer(request)) > 0) {
    refuse(request, {413, "Payload Too Large", "this path takes no body\n"});
    return;
  }
  if (pprof.matched && pprof.page != PprofPage::kCmdline) {
    if (auto refusal = access_.checkProfileStart(request)) {
      refuse(request, *refusal);
    } else {
      pprof_(request, pprof.page, pprof.worker);
    }
    return;
  }
  if (evhttp_request_get_command(request) == EVHTTP_REQ_POST) {
    refuse(request, {405, "Method Not Allowed", "this path takes GET or HEAD\n", "GET, HEAD"});
    return;
  }
  if (pprof.matched) {
    pprof_(request, pprof.page, pprof.worker);
  } else if (path == "/") {
    // Everything the page needs is inline; the policy says so to the
    // browser too, so that nothing it shows can load or send elsewhere.
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    evhttp_add_header(headers, "Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'");
    evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    sendReply(request, 200, "OK", "text/html; charset=utf-8", statusPageHtml());
  } else if (path == "/metrics") {
    sendReply(request, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
          prometheus::TextSerializer().Serialize(collector_.Collect()));
  } else if (path == "/healthz") {
    Health h = health_();
    sendReply(request, h.ok ? 200 : 503, h.ok ? "OK" : "Service Unavailable", "text/plain", h.detail + "\n");
  } else if (path == "/status") {
    sendReply(request, 200, "OK", "application/json", status().dump(2) + "\n");
  } else {
    sendReply(request, 404, "Not Found", "text/plain", "not found; try /, /metrics, /healthz or /status\n");
  }
}

nlohmann::json AdminHttp::status() const {
  nlohmann::json j = stats::snapshotJson(stats::takeSnapshot(segment_));
  MasterStatus master = collector_.masterStatus();
  // Each of our workers' state as /metrics has it (the segment tells the
  // same but for the moments the two are read apart).
  std::map<pid_t, std::string_view> shown;
  for (const ShownWorker& w : master.workers) {
    if (w.pid > 0) shown[w.pid] = w.state;
  }
  for (auto& w : j["workers"]) {
    if (auto it = shown.find(w["pid"].get<pid_t>()); it != shown.end()) w["state"] = std::string(it->second);
  }
  j["workers_by_state"] = workersByState(master.workers);
  j["workers_configured"] = master.workersConfigured;
  if (master.agentAddress.empty()) {
    j["agent"] = nullptr;
  } else {
    std::string line = master.agentLine;
    if (!line.empty() && line.back() == '\n') line.pop_back();
    j["agent"] = {{"listen", master.agentAddress}, {"answer", line}};
  }
  nlohmann::json queues = nlohmann::json::array();
  for (const auto& q : master.listenQueues) {
    queues.push_back({{"address", q.address}, {"worker", q.worker}, {"length", q.queue.length}, {"limit", q.queue.limit}});
  }
  j["listen_queues"] = std::move(queues);
  return j;
}

}  // namespace tcpfork
