#pragma once
// QuitSignal: SIGQUIT, the graceful stop, as a loop event that says who sent
// it: another process (the master, an operator), or this process itself (a
// handler module that can no longer serve stops its worker so, as the
// journal does after a failed fdatasync). libevent's signal events do not
// say who sent a signal, so SIGQUIT has a handler of its own (SA_SIGINFO):
// it only notes whether the sender's pid is ours and wakes the loop through
// an eventfd; the callback runs on the worker's loop. One per process,
// built and destroyed on the loop thread; SIGQUIT is ignored once it is gone
// (the worker is stopping then).

#include <functional>

#include "base/event_ptr.h"
#include "base/unique_fd.h"

namespace tcpfork {

class QuitSignal {
 public:
  // `fromItself`: at least one SIGQUIT so far came from this process.
  using OnQuit = std::function<void(bool fromItself)>;

  // Throws std::system_error when the eventfd, its event or the handler
  // cannot be made.
  QuitSignal(event_base* base, OnQuit onQuit);
  ~QuitSignal();
  QuitSignal(const QuitSignal&) = delete;
  QuitSignal& operator=(const QuitSignal&) = delete;

 private:
  static void onWake(evutil_socket_t fd, short what, void* self);

  OnQuit onQuit_;
  UniqueFd wake_;
  EventPtr event_;
};

}  // namespace tcpfork
