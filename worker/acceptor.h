#pragma once
// Acceptor: accepts on one listening socket for the worker loop and hands each
// new socket to a callback. Owned by the Worker; lives on its loop. It never
// closes the listening fd it is given (the master owns listeners); in
// standalone mode the Worker owns that fd instead.
//
// When accept() runs out of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM) the
// listener is paused for a moment instead of spinning on a readable socket.

#include <functional>

#include "base/event_ptr.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "worker/slot_publisher.h"

namespace tcpfork {

class Acceptor {
 public:
  using NewConnection = std::function<void(UniqueFd)>;

  Acceptor(event_base* base, int listenFd, stats::Slot* stats, NewConnection onConnection);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void enable();
  // Accepts everything already queued (no per-wakeup bound), for a listener
  // about to be closed.
  void acceptQueued();
  // Stops accepting for good (graceful stop); queued connections stay in the
  // kernel backlog for another process on the same listener.
  void disable();

 private:
  static void onReadable(evutil_socket_t fd, short what, void* self);
  static void onResume(evutil_socket_t fd, short what, void* self);
  void acceptSome(int limit);

  int listenFd_;
  stats::Slot* stats_;
  NewConnection onConnection_;
  EventPtr acceptEvent_;
  EventPtr resumeTimer_;
  RateLimitedLog errorLog_{1};
  bool enabled_ = false;
};

}  // namespace tcpfork
