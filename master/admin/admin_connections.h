#pragma once
// AdminConnections: the admin HTTP server's guard over its connections, so
// that nobody on the admin port can take the master's memory, descriptors or
// loop. Owned by AdminHttp; on the master loop.
//   - At most `limit` connections. A new one past it closes the one that has
//     made no progress for longest, among those open for at least kGrace
//     (time to send a request) and owed no deferred reply, so idle or slow
//     peers can never lock out a scraper; while none qualifies, the listener
//     pauses and new connections wait in the kernel's queue.
//   - A request must arrive whole within kRequestDeadline of the connection's
//     accept or its previous request: a peer dripping a header byte at a time
//     cannot hold a connection (evhttp's own timeout is per read).
//   - accept() failing with EMFILE or ENFILE pauses the listener for 100 ms
//     instead of spinning on it, counted in a rate-limited log line.
// evhttp 2.1 has no connection hooks: connections are seen through the
// bufferevent callback evhttp asks for each new one, and their closing
// through the connection's close callback, which this class owns (others
// watch a connection through watchClose()).

#include <event2/http.h>
#include <event2/listener.h>

#include <chrono>
#include <functional>
#include <map>
#include <vector>

#include "base/event_ptr.h"
#include "base/log.h"

namespace tcpfork {

class AdminConnections {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kRequestDeadline = std::chrono::seconds(10);
  static constexpr auto kGrace = std::chrono::milliseconds(250);

  AdminConnections(event_base* base, evhttp* http, unsigned limit);
  ~AdminConnections();
  AdminConnections(const AdminConnections&) = delete;
  AdminConnections& operator=(const AdminConnections&) = delete;

  // Starts guarding `listener` (evhttp's, for the bound admin socket).
  void attach(evconnlistener* listener);
  // The listener is gone (binary upgrade hands the socket over).
  void detach() { listener_ = nullptr; }
  // A request arrived whole on its connection: its deadline restarts.
  void onRequest(evhttp_request* request);
  // Runs `onClose` when the request's connection closes, and keeps that
  // connection from being evicted meanwhile (a deferred reply is owed on it).
  // An empty function stops watching.
  void watchClose(evhttp_request* request, std::function<void()> onClose);
  size_t open() const { return open_.size(); }
  unsigned limit() const { return limit_; }

 private:
  struct Connection {
    Clock::time_point evictableAt;  // accept + kGrace
    Clock::time_point deadline;
    std::function<void()> onClose;  // set while a deferred reply is owed
  };

  static bufferevent* onNewConnection(event_base* base, void* self);
  static void onAdopt(evutil_socket_t, short, void* self);
  static void onClosed(evhttp_connection* connection, void* self);
  static void onAcceptError(evconnlistener* listener, void* http);
  static void onSweep(evutil_socket_t, short, void* self);
  void adopt();
  void enforceLimit();
  void pauseAccepting(Clock::duration forHowLong);

  event_base* base_;
  evhttp* http_;
  unsigned limit_;
  evconnlistener* listener_ = nullptr;  // evhttp's; null once detached
  std::vector<bufferevent*> fresh_;    // created for evhttp, not yet adopted (one reference each is ours)
  std::map<evhttp_connection*, Connection> open_;
  EventPtr adoptEvent_;
  EventPtr sweep_;
  EventPtr resume_;   // after an accept error's pause
  EventPtr recheck_;  // when a connection's grace ends while the limit holds
  bool paused_ = false;
  uint64_t acceptErrors_ = 0;
  uint64_t evicted_ = 0;
  RateLimitedLog log_{1};
};

}  // namespace tcpfork
