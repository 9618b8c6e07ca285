#pragma once
// PprofEndpoint: /debug/pprof/profile?seconds=N&worker=K on the admin HTTP
// server (POST, or GET as the pprof tools send it: AdminAccess), off unless
// profile.http is set, and answering only loopback peers unless
// profile.http_remote is too. It asks worker K (the current process of that
// index) for an N-second CPU profile through its stats slot and SIGTRAP,
// waits on the master loop without blocking it, and returns the profile
// file, so `google-pprof BINARY http://127.0.0.1:8889/debug/pprof/profile?seconds=10`
// works against a C++ server. Each waiting request holds one of the
// `adminConnections` the admin port may have open (and AdminConnections
// never closes it to make room), so at most half of them wait at once: the
// rest stay for /healthz and /metrics. More are answered 429 with a
// Retry-After.
//
// The pprof tools name a profile's addresses through the symbol protocol:
// GET /debug/pprof/symbol answers "num_symbols: 1", and a POST of
// "0xADDR+0xADDR..." answers "0xADDR SYMBOL" lines. The worker writes the
// names beside each profile (worker/profile_symbols.h) from its own mappings,
// so the master never opens a binary; it keeps the table of the last profile
// served for each of the last kRememberedTables worker indexes, and answers
// /debug/worker/K/pprof/symbol from worker K's and /debug/pprof/symbol (the
// URL `go tool pprof` derives, without the query) from the last served.
//
// With format=folded, either profile is answered with the folded stacks the
// worker wrote beside it (worker/folded_stacks.h), named by the worker.
// Owned by the Master.

#include <event2/http.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "base/event_ptr.h"
#include "base/log.h"
#include "master/profiling/profile_dir.h"
#include "master/profiling/symbol_table.h"
#include "stats/segment.h"

namespace tcpfork {

class PprofEndpoint {
 public:
  struct Target {
    pid_t pid;
    uint32_t slot;
  };
  using FindWorker = std::function<std::optional<Target>(unsigned index)>;
  // AdminHttp::watchClose: runs the function when the request's client goes
  // away; an empty function stops watching.
  using WatchClose = std::function<void(evhttp_request*, std::function<void()>)>;

  PprofEndpoint(event_base* base, stats::StatsSegment& segment, const ProfileDir& dir, bool allowRemote,
                unsigned adminConnections, FindWorker findWorker, WatchClose watchClose);
  ~PprofEndpoint();

  // `worker` from the path, else the `worker` query parameter (default 0).
  void handle(evhttp_request* request, std::optional<unsigned> worker);
  // /debug/pprof/heap?worker=K, /debug/worker/K/pprof/heap: worker K writes
  // its sampled in-use heap (SIGURG; worker/heap_profiler.h) into the
  // profile directory, and the master serves the file once it is there.
  void heap(evhttp_request* request, std::optional<unsigned> worker);
  // /debug/pprof/symbol and /debug/worker/K/pprof/symbol (`worker` K).
  void symbol(evhttp_request* request, std::optional<unsigned> worker);
  // /debug/pprof/cmdline, which google-pprof reads for the program's name.
  void cmdline(evhttp_request* request);

  // The most addresses one symbol request may ask about, and the most
  // bytes it may have (the admin port's body limit, for that path only).
  static constexpr size_t kMaxSymbolAddresses = 16384;
  static constexpr size_t kMaxSymbolRequestBytes = kMaxSymbolAddresses * 19;
  static constexpr size_t kRememberedTables = 8;

 private:
  struct Pending {
    PprofEndpoint* owner = nullptr;
    evhttp_request* request = nullptr;  // null once the client went away
    Target target{};
    unsigned index = 0;
    std::chrono::steady_clock::time_point startBy;
    std::chrono::steady_clock::time_point expectedEnd;  // for a Retry-After
    std::chrono::steady_clock::time_point finishBy;
    bool started = false;
    bool heap = false;                       // a heap profile, not a CPU one
    bool folded = false;                     // format=folded: the worker's folded stacks
    std::optional<std::string> previousHeap;  // the newest heap file before the request
    EventPtr poll;
  };

  static void onPoll(evutil_socket_t fd, short what, void* pending);
  // Answers with profile `file` (read with ProfileDir's bounds) and keeps its symbols.
  void serve(Pending& pending, const std::string& file);
  void finish(Pending& pending, int code, const std::string& body, const char* contentType = "text/plain");
  // 429 when maxWaiting_ requests already wait; true when it answered.
  bool refuseOverShare(evhttp_request* request);
  // 403 unless the peer is on loopback or profile.http_remote is on; true when it answered.
  bool refusePeer(evhttp_request* request);
  // Keeps the symbol table beside profile `file` for symbol requests about worker `index`.
  void rememberSymbols(unsigned index, const std::string& file);

  event_base* base_;
  stats::StatsSegment& segment_;
  const ProfileDir& dir_;
  bool allowRemote_;
  unsigned maxWaiting_;  // half the admin connections
  FindWorker findWorker_;
  WatchClose watchClose_;
  std::list<Pending> pending_;
  // Newest first: the last served profile's table for each worker index.
  std::list<std::pair<unsigned, std::shared_ptr<const SymbolTable>>> symbols_;
  RateLimitedLog log_{1};
};

}  // namespace tcpfork
