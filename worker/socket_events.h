#pragma once
// SocketEvents: a connection's read and write events on its socket, and
// whether each is armed. Each waits with a timeout (the idle timeout, or a
// linger or grace period) and calls its callback with EV_TIMEOUT when it
// passes; a persistent event's timeout restarts with every callback.
// Disarming also takes an event off libevent's active queue, so a callback
// ready in the same loop pass does not run after it.

#include <event2/event.h>

#include <chrono>

#include "base/event_ptr.h"

namespace tcpfork {

class SocketEvents {
 public:
  // Throws std::system_error when libevent cannot allocate them.
  SocketEvents(event_base* base, int fd, event_callback_fn onRead, event_callback_fn onWrite, void* owner);

  bool reading() const { return reading_; }
  bool writing() const { return writing_; }
  // (Re)arms reading, waiting at most `timeout` (null: forever). Throws
  // std::system_error when libevent refuses.
  void read(const timeval* timeout);
  void read(std::chrono::milliseconds timeout);
  void stopReading();
  void write(const timeval* timeout);
  void stopWriting();
  void disarm();

 private:
  EventPtr read_;
  EventPtr write_;
  bool reading_ = false;
  bool writing_ = false;
};

}  // namespace tcpfork
