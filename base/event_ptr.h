#pragma once
// unique_ptr aliases that free libevent objects with their own free functions,
// so every event_base, event and evbuffer has exactly one owner; and the two
// conversions every loop needs.

#include <event2/buffer.h>
#include <event2/event.h>

#include <chrono>
#include <memory>
#include <system_error>

namespace tcpfork {

struct EventBaseDeleter {
  void operator()(event_base* base) const { event_base_free(base); }
};
struct EventDeleter {
  void operator()(event* ev) const { event_free(ev); }
};
struct EvbufferDeleter {
  void operator()(evbuffer* buf) const { evbuffer_free(buf); }
};

using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;
using EvbufferPtr = std::unique_ptr<evbuffer, EvbufferDeleter>;

// A new event_base; throws std::system_error when libevent cannot make one.
inline EventBasePtr newEventBase() {
  EventBasePtr base(event_base_new());
  if (!base) throw std::system_error(ENOMEM, std::generic_category(), "event_base_new()");
  return base;
}

// libevent takes timeouts as timevals.
inline timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

}  // namespace tcpfork
