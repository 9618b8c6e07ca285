#include "master/admin/admin_connections.h"

#include <event2/bufferevent.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

namespace tcpfork {
namespace {

constexpr timeval kSweepInterval{1, 0};
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

// libevent 2.1 calls a listener's error callback with the pointer evhttp set
// for its accept callback, the evhttp itself, never with ours; this maps it
// back. Written only by AdminConnections' constructor and destructor, read on
// the master loop.
std::map<evhttp*, AdminConnections*>& guards() {
  static std::map<evhttp*, AdminConnections*> byHttp;
  return byHttp;
}

}  // namespace

AdminConnections::AdminConnections(event_base* base, evhttp* http, unsigned limit)
    : base_(base),
      http_(http),
      limit_(limit),
      adoptEvent_(event_new(base, -1, 0, &AdminConnections::onAdopt, this)),
      sweep_(event_new(base, -1, EV_PERSIST, &AdminConnections::onSweep, this)),
      resume_(evtimer_new(base, [](evutil_socket_t, short, void* self) {
        auto* guard = static_cast<AdminConnections*>(self);
        guard->paused_ = false;
        guard->enforceLimit();
      }, this)),
      recheck_(evtimer_new(base, [](evutil_socket_t, short, void* self) {
        static_cast<AdminConnections*>(self)->enforceLimit();
      }, this)) {
  if (!adoptEvent_ || !sweep_ || !resume_ || !recheck_) throw std::system_error(ENOMEM, std::generic_category(), "event_new(admin)");
  evhttp_set_bevcb(http_, &AdminConnections::onNewConnection, this);
  event_add(sweep_.get(), &kSweepInterval);
  guards()[http_] = this;
}

AdminConnections::~AdminConnections() {
  guards().erase(http_);
  // evhttp_free() closes the connections later; they must not call us then.
  for (auto& [connection, state] : open_) evhttp_connection_set_closecb(connection, nullptr, nullptr);
  for (bufferevent* bev : fresh_) bufferevent_decref(bev);
}

void AdminConnections::attach(evconnlistener* listener) {
  listener_ = listener;
  evconnlistener_set_error_cb(listener_, &AdminConnections::onAcceptError);
}

// evhttp asks for the bufferevent of each connection it accepts, before it
// makes the connection object; that object is adopted once evhttp returns.
// The reference held meanwhile keeps the bufferevent valid even if evhttp
// gave up on the connection at once.
bufferevent* AdminConnections::onNewConnection(event_base* base, void* self) {
  auto* guard = static_cast<AdminConnections*>(self);
  bufferevent* bev = bufferevent_socket_new(base, -1, 0);  // evhttp closes the fd, as with its own
  if (!bev) return nullptr;                                // evhttp makes its own, unguarded
  bufferevent_incref(bev);
  guard->fresh_.push_back(bev);
  event_active(guard->adoptEvent_.get(), EV_TIMEOUT, 0);
  // Ends this burst of accepts one past the limit (the listener stops when
  // its callback disables it); adopt() makes room and resumes.
  if (guard->listener_ && guard->open_.size() + guard->fresh_.size() > guard->limit_) {
    evconnlistener_disable(guard->listener_);
  }
  return bev;
}

void AdminConnections::onAdopt(evutil_socket_t, short, void* self) { static_cast<AdminConnections*>(self)->adopt(); }

void AdminConnections::adopt() {
  auto now = Clock::now();
  for (bufferevent* bev : fresh_) {
    bufferevent_data_cb read = nullptr;
    void* connection = nullptr;
    bufferevent_getcb(bev, &read, nullptr, nullptr, &connection);
    // evhttp points its callbacks at the connection; cleared, they mean it
    // already freed it.
    if (read && connection) {
      auto* evcon = static_cast<evhttp_connection*>(connection);
      evhttp_connection_set_closecb(evcon, &AdminConnections::onClosed, this);
      open_[evcon] = Connection{now + kGrace, now + kRequestDeadline, {}};
    }
    bufferevent_decref(bev);
  }
  fresh_.clear();
  enforceLimit();
}

// Past the limit, the connection that has made no progress for longest goes,
// unless it owes a deferred reply; when all of them do, accepting waits.
void AdminConnections::enforceLimit() {
  auto now = Clock::now();
  auto evictable = [&](const Connection& c) { return !c.onClose && now >= c.evictableAt; };
  while (open_.size() > limit_) {
    auto victim = open_.end();
    for (auto it = open_.begin(); it != open_.end(); ++it) {
      if (evictable(it->second) && (victim == open_.end() || it->second.deadline < victim->second.deadline)) victim = it;
    }
    if (victim == open_.end()) break;
    ++evicted_;
    evhttp_connection* evcon = victim->first;
    open_.erase(victim);
    evhttp_connection_set_closecb(evcon, nullptr, nullptr);
    evhttp_connection_free(evcon);
  }
  if (evicted_ > 0) {
    log_.warn("admin HTTP: {} connections open (the limit); closed {} idle or unfinished one(s) to make room",
              open_.size(), evicted_);
    evicted_ = 0;
  }
  if (!listener_ || paused_) return;
  bool room = open_.size() < limit_ ||
              std::any_of(open_.begin(), open_.end(), [&](const auto& entry) { return evictable(entry.second); });
  if (room) {
    evconnlistener_enable(listener_);
    return;
  }
  // Full of connections that are new or owed a reply: the kernel queues new
  // ones until the first grace ends (or a connection closes).
  evconnlistener_disable(listener_);
  std::optional<Clock::time_point> next;
  for (const auto& [connection, state] : open_) {
    if (!state.onClose && (!next || state.evictableAt < *next)) next = state.evictableAt;
  }
  if (next) {
    auto us = std::max<int64_t>(1000, std::chrono::duration_cast<std::chrono::microseconds>(*next - now).count());
    timeval tv{time_t(us / 1'000'000), suseconds_t(us % 1'000'000)};
    evtimer_add(recheck_.get(), &tv);
  }
}

void AdminConnections::onRequest(evhttp_request* request) {
  auto it = open_.find(evhttp_request_get_connection(request));
  if (it != open_.end()) it->second.deadline = Clock::now() + kRequestDeadline;
}

void AdminConnections::watchClose(evhttp_request* request, std::function<void()> onClose) {
  auto it = open_.find(evhttp_request_get_connection(request));
  if (it != open_.end()) {
    it->second.onClose = std::move(onClose);
    it->second.deadline = Clock::now() + kRequestDeadline;
  }
}

void AdminConnections::onClosed(evhttp_connection* connection, void* self) {
  auto* guard = static_cast<AdminConnections*>(self);
  auto it = guard->open_.find(connection);
  if (it == guard->open_.end()) return;
  auto onClose = std::move(it->second.onClose);
  guard->open_.erase(it);
  if (onClose) onClose();
  if (guard->listener_ && !guard->paused_ && guard->open_.size() < guard->limit_) {
    evconnlistener_enable(guard->listener_);
  }
}

void AdminConnections::onAcceptError(evconnlistener* listener, void* http) {
  int error = errno;
  auto it = guards().find(static_cast<evhttp*>(http));
  if (it == guards().end()) {
    evconnlistener_disable(listener);  // nobody to resume it: better closed than spinning
    return;
  }
  AdminConnections& guard = *it->second;
  ++guard.acceptErrors_;
  guard.log_.warn("admin HTTP: accept(): {} ({} accept errors so far, {} connections open); pausing accepts for {} ms",
                  std::strerror(error), guard.acceptErrors_, guard.open_.size(), kAcceptPause.count());
  guard.pauseAccepting(kAcceptPause);
}

void AdminConnections::pauseAccepting(Clock::duration forHowLong) {
  if (!listener_) return;
  evconnlistener_disable(listener_);
  paused_ = true;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(forHowLong).count();
  timeval tv{time_t(us / 1'000'000), suseconds_t(us % 1'000'000)};
  evtimer_add(resume_.get(), &tv);
}

void AdminConnections::onSweep(evutil_socket_t, short, void* self) {
  auto* guard = static_cast<AdminConnections*>(self);
  auto now = Clock::now();
  std::vector<evhttp_connection*> late;
  for (const auto& [connection, state] : guard->open_) {
    if (!state.onClose && now > state.deadline) late.push_back(connection);
  }
  for (evhttp_connection* connection : late) {
    guard->open_.erase(connection);
    evhttp_connection_set_closecb(connection, nullptr, nullptr);
    evhttp_connection_free(connection);
  }
  if (!late.empty()) {
    guard->log_.warn("admin HTTP: closed {} connection(s) that sent no whole request within {} s", late.size(),
                     std::chrono::duration_cast<std::chrono::seconds>(kRequestDeadline).count());
    guard->enforceLimit();
  }
}

}  // namespace tcpfork
