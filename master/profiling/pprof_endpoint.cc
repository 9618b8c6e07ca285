#include "master/profiling/pprof_endpoint.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <cerrno>
#include <limits>

#include "master/admin/http_reply.h"

namespace tcpfork {
namespace {

constexpr timeval kPollInterval{0, 100'000};
constexpr auto kStartGrace = std::chrono::seconds(3);
constexpr auto kFinishGrace = std::chrono::seconds(5);
constexpr long kMaxSeconds = 300;
// A heap profile is written at once: this is for a worker busy in its handler.
constexpr auto kHeapGrace = std::chrono::seconds(5);

void reply(evhttp_request* request, int code, const std::string& body, const char* contentType) {
  sendReply(request, code, code == 200 ? "OK" : "Error", contentType, body);
}

// Leading digits only: given `http://HOST/debug/pprof/profile?seconds=10`,
// google-pprof appends its own "/pprof/profile?seconds=30" to the URL, so the
// value arrives as "10/pprof/profile?seconds=30".
// format=folded asks for the folded stacks the worker wrote beside the
// profile; nullopt for a format there is none of.
std::optional<bool> queryFolded(const evkeyvalq& query) {
  const char* text = evhttp_find_header(&query, "format");
  if (!text || std::strcmp(text, "pprof") == 0) return false;
  if (std::strcmp(text, "folded") == 0) return true;
  return std::nullopt;
}

std::optional<long> queryNumber(const evkeyvalq& query, const char* key, long fallback) {
  const char* text = evhttp_find_header(&query, key);
  if (!text) return fallback;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text, &end, 10);
  if (end == text || errno == ERANGE || (*end != '\0' && *end != '/')) return std::nullopt;
  return value;
}

}  // namespace

PprofEndpoint::PprofEndpoint(event_base* base, stats::StatsSegment& segment, const ProfileDir& dir, bool allowRemote,
                             unsigned adminConnections, FindWorker findWorker, WatchClose watchClose)
    : base_(base),
      segment_(segment),
      dir_(dir),
      allowRemote_(allowRemote),
      maxWaiting_(adminConnections / 2),
      findWorker_(std::move(findWorker)),
      watchClose_(std::move(watchClose)) {}

PprofEndpoint::~PprofEndpoint() {
  for (auto& p : pending_) {
    if (p.request) {
      watchClose_(p.request, {});
      reply(p.request, 503, "shutting down\n", "text/plain");
    }
  }
}

bool PprofEndpoint::refusePeer(evhttp_request* request) {
  if (allowRemote_ || fromLoopback(request)) return false;
  reply(request, 403, "profiling is served to loopback clients only (profile.http_remote)\n", "text/plain");
  return true;
}

void PprofEndpoint::handle(evhttp_request* request, std::optional<unsigned> worker) {
  char* peer = nullptr;
  ev_uint16_t port = 0;
  evhttp_connection_get_peer(evhttp_request_get_connection(request), &peer, &port);
  if (refusePeer(request)) return;
  if (refuseOverShare(request)) return;
  evkeyvalq query{};
  const char* rawQuery = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(request));
  evhttp_parse_query_str(rawQuery ? rawQuery : "", &query);
  auto seconds = queryNumber(query, "seconds", 30);
  auto index = worker ? std::optional<long>(*worker) : queryNumber(query, "worker", 0);
  auto folded = queryFolded(query);
  evhttp_clear_headers(&query);
  // An index past uint32 would wrap to a small one and profile the wrong worker.
  if (!seconds || *seconds < 1 || *seconds > kMaxSeconds || !index || *index < 0 ||
      *index > long(std::numeric_limits<uint32_t>::max()) || !folded) {
    reply(request, 400,
          fmt::format("usage: /debug/pprof/profile?seconds=1..{}&worker=INDEX[&format=folded]\n", kMaxSeconds),
          "text/plain");
    return;
  }
  auto target = findWorker_(unsigned(*index));
  if (!target) {
    reply(request, 404, fmt::format("no serving worker {}\n", *index), "text/plain");
    return;
  }
  stats::Slot& slot = segment_.slot(target->slot);
  // Until the worker flags that it profiles, only our own list knows that a
  // request is on its way: a second SIGTRAP would stop the first profile.
  bool requested = std::any_of(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.target.pid == target->pid; });
  if (requested || stats::load(slot.profiling) != 0) {
    reply(request, 409, fmt::format("worker {} is already profiling\n", *index), "text/plain");
    return;
  }
  stats::store(slot.profileRequestMs, uint64_t(*seconds) * 1000);
  if (::kill(target->pid, SIGTRAP) != 0) {
    stats::store(slot.profileRequestMs, 0);
    reply(request, 500, "cannot signal the worker\n", "text/plain");
    return;
  }
  spdlog::info("pprof: {}-second CPU profile of worker {} (pid {}) for {}", *seconds, *index, target->pid,
               peer ? peer : "?");
  Pending& p = pending_.emplace_back();
  p.owner = this;
  p.request = request;
  p.target = *target;
  p.index = unsigned(*index);
  p.folded = *folded;
  auto now = std::chrono::steady_clock::now();
  p.startBy = now + kStartGrace;
  p.expectedEnd = now + std::chrono::seconds(*seconds);
  p.finishBy = now + std::chrono::seconds(*seconds) + kFinishGrace;
  p.poll.reset(event_new(base_, -1, EV_PERSIST, &PprofEndpoint::onPoll, &p));
  event_add(p.poll.get(), &kPollInterval);
  watchClose_(request, [&p] { p.request = nullptr; });
}

bool PprofEndpoint::refuseOverShare(evhttp_request* request) {
  // Those whose client went away hold no connection.
  auto waiting = std::count_if(pending_.begin(), pending_.end(), [](const Pending& p) { return p.request != nullptr; });
  if (size_t(waiting) < maxWaiting_) return false;
  auto now = std::chrono::steady_clock::now();
  auto next = now + std::chrono::seconds(kMaxSeconds);
  for (const auto& p : pending_) {
    if (p.request) next = std::min(next, p.expectedEnd);
  }
  auto retry = std::max<long>(1, long(std::chrono::ceil<std::chrono::seconds>(next - now).count()));
  evhttp_add_header(evhttp_request_get_output_headers(request), "Retry-After", std::to_string(retry).c_str());
  std::string why = maxWaiting_ == 0
      ? "the admin port has too few connections to spare one for a profile (RLIMIT_NOFILE)"
      : fmt::format("{} profile requests already wait, the most at once (half the admin connections, so that /healthz "
                    "and /metrics always have room)",
                    waiting);
  log_.warn("pprof: refused a profile request: {}", why);
  reply(request, 429, fmt::format("{}; retry in {} s\n", why, retry), "text/plain");
  return true;
}

void PprofEndpoint::heap(evhttp_request* request, std::optional<unsigned> worker) {
  if (refusePeer(request)) return;
#ifdef TCPFORK_SYSTEM_ALLOCATOR
  reply(request, 501,
        "heap profiles are unavailable in this build: a sanitizer build allocates with the system allocator, not "
        "tcmalloc\n",
        "text/plain");
  return;
#endif
  if (refuseOverShare(request)) return;
  evkeyvalq query{};
  const char* rawQuery = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(request));
  evhttp_parse_query_str(rawQuery ? rawQuery : "", &query);
  auto index = worker ? std::optional<long>(*worker) : queryNumber(query, "worker", 0);
  auto folded = queryFolded(query);
  evhttp_clear_headers(&query);
  // An index past uint32 would wrap to a small one and profile the wrong worker.
  if (!index || *index < 0 || *index > long(std::numeric_limits<uint32_t>::max()) || !folded) {
    reply(request, 400, "usage: /debug/pprof/heap?worker=INDEX[&format=folded]\n", "text/plain");
    return;
  }
  auto target = findWorker_(unsigned(*index));
  if (!target) {
    reply(request, 404, fmt::format("no serving worker {}\n", *index), "text/plain");
    return;
  }
  if (std::any_of(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.heap && p.target.pid == target->pid; })) {
    reply(request, 409, fmt::format("worker {} is already writing a heap profile\n", *index), "text/plain");
    return;
  }
  auto previous = dir_.newestProfileOf(target->pid, ".heap");
  if (::kill(target->pid, SIGURG) != 0) {
    reply(request, 500, "cannot signal the worker\n", "text/plain");
    return;
  }
  spdlog::info("pprof: heap profile of worker {} (pid {})", *index, target->pid);
  Pending& p = pending_.emplace_back();
  p.owner = this;
  p.request = request;
  p.target = *target;
  p.index = unsigned(*index);
  p.heap = true;
  p.folded = *folded;
  p.previousHeap = previous;
  auto now = std::chrono::steady_clock::now();
  p.expectedEnd = now + std::chrono::seconds(1);
  p.finishBy = now + kHeapGrace;
  p.poll.reset(event_new(base_, -1, EV_PERSIST, &PprofEndpoint::onPoll, &p));
  event_add(p.poll.get(), &kPollInterval);
  watchClose_(request, [&p] { p.request = nullptr; });
}

void PprofEndpoint::onPoll(evutil_socket_t, short, void* arg) {
  auto& p = *static_cast<Pending*>(arg);
  PprofEndpoint& self = *p.owner;
  if (p.heap) {
    auto file = self.dir_.newestProfileOf(p.target.pid, ".heap");
    if (file && file != p.previousHeap) {
      self.serve(p, *file);
    } else if (std::chrono::steady_clock::now() > p.finishBy) {
      self.finish(p, 504, "the worker wrote no heap profile in time; its log says why\n");
    }
    return;
  }
  stats::Slot& slot = self.segment_.slot(p.target.slot);
  bool profiling = stats::load(slot.profiling) != 0 && stats::load(slot.pid) == uint64_t(p.target.pid);
  auto now = std::chrono::steady_clock::now();
  if (!p.started) {
    if (profiling) {
      p.started = true;
      stats::store(slot.profileRequestMs, 0);  // later SIGTRAPs use the configured duration
    } else if (now > p.startBy) {
      stats::store(slot.profileRequestMs, 0);
      self.finish(p, 500, "the worker did not start profiling\n");
    }
    return;
  }
  if (profiling) {
    if (now > p.finishBy) self.finish(p, 504, "the profile did not finish in time\n");
    return;
  }
  auto file = self.dir_.newestProfileOf(p.target.pid);
  if (!file) {
    self.finish(p, 500, "the worker's profile file is missing\n");
    return;
  }
  self.serve(p, *file);
}

void PprofEndpoint::serve(Pending& p, const std::string& file) {
  std::string body;
  try {
    body = dir_.readProfile(p.folded ? file + ".folded" : file);
  } catch (const ProfileDir::Refused& e) {
    // The directory is the workers' user's: what is there may be planted.
    spdlog::warn("pprof: not serving the profile of worker pid {}: {}", p.target.pid, e.what());
    finish(p, 500, "the worker's profile file was refused; the master's log says why\n");
    return;
  }
  if (p.folded) {
    finish(p, 200, body, "text/plain; charset=utf-8");
    return;
  }
  rememberSymbols(p.index, file);
  finish(p, 200, body, p.heap ? "text/plain" : "application/octet-stream");
}

void PprofEndpoint::rememberSymbols(unsigned index, const std::string& file) {
  symbols_.remove_if([&](const auto& entry) { return entry.first == index; });
  std::shared_ptr<const SymbolTable> table;
  try {
    table = std::make_shared<const SymbolTable>(SymbolTable::parse(dir_.readProfile(file + ".sym")));
  } catch (const std::exception& e) {
    // The profile is still served; the tools then show addresses.
    spdlog::warn("pprof: no names for the addresses of {}: {}", file, e.what());
    return;
  }
  symbols_.emplace_front(index, std::move(table));
  if (symbols_.size() > kRememberedTables) symbols_.pop_back();
}

void PprofEndpoint::symbol(evhttp_request* request, std::optional<unsigned> worker) {
  if (refusePeer(request)) return;
  if (evhttp_request_get_command(request) != EVHTTP_REQ_POST) {
    // Any nonzero count: the tools only check that the program has symbols.
    reply(request, 200, "num_symbols: 1\n", "text/plain");
    return;
  }
  std::shared_ptr<const SymbolTable> table;
  for (const auto& [index, t] : symbols_) {
    if (!worker || index == *worker) {
      table = t;
      break;
    }
  }
  if (!table) {
    reply(request, 404,
          worker ? fmt::format("no profile of worker {} has been served to name addresses from\n", *worker)
                 : std::string("no profile has been served to name addresses from\n"),
          "text/plain");
    return;
  }
  evbuffer* input = evhttp_request_get_input_buffer(request);
  size_t length = evbuffer_get_length(input);
  if (length > kMaxSymbolRequestBytes) {  // evhttp's limit holds it already; this keeps it true here
    reply(request, 413, "too many addresses\n", "text/plain");
    return;
  }
  std::string body(length, '\0');
  evbuffer_copyout(input, body.data(), length);
  std::string answer;
  size_t count = 0;
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find_first_of("+ \r\n\t", at);
    if (end == std::string::npos) end = body.size();
    std::string_view token(body.data() + at, end - at);
    at = end + 1;
    if (token.empty()) continue;
    uint64_t address = 0;
    if (!token.starts_with("0x") && !token.starts_with("0X")) token = {};
    else token.remove_prefix(2);
    auto [stop, error] = std::from_chars(token.data(), token.data() + token.size(), address, 16);
    if (token.empty() || token.size() > 16 || error != std::errc() || stop != token.data() + token.size()) {
      reply(request, 400, "usage: POST 0xADDRESS+0xADDRESS...\n", "text/plain");
      return;
    }
    if (++count > kMaxSymbolAddresses) {
      reply(request, 413, fmt::format("at most {} addresses at once\n", kMaxSymbolAddresses), "text/plain");
      return;
    }
    if (const std::string* name = table->lookup(address)) answer += fmt::format("{:#x}\t{}\n", address, *name);
  }
  reply(request, 200, answer, "text/plain");
}

void PprofEndpoint::cmdline(evhttp_request* request) {
  if (refusePeer(request)) return;
  reply(request, 200, "tcpfork-worker\n", "text/plain");
}

void PprofEndpoint::finish(Pending& pending, int code, const std::string& body, const char* contentType) {
  if (pending.request) {
    watchClose_(pending.request, {});
    reply(pending.request, code, body, contentType);
  }
  pending_.remove_if([&](const Pending& p) { return &p == &pending; });
}

}  // namespace tcpfork
