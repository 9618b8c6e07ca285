#pragma once
// unique_ptr aliases that free libevent objects with their own free functions,
// so every event_base, event and evbuffer has exactly one owner.

#include <event2/buffer.h>
#include <event2/event.h>

#include <memory>

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

}  // namespace tcpfork
