#pragma once
// Worker: one libevent loop serving one listening socket. Built in the
// worker's main(), owns its connections and frees them only from its loop.
// Signals are loop events: SIGQUIT drains gracefully (stop accepting, send the
// acks owed, close, exit within drain_timeout); SIGTERM and SIGINT stop at once.

#include <memory>
#include <unordered_map>

#include "base/event_ptr.h"
#include "base/log.h"
#include "worker/acceptor.h"
#include "worker/connection.h"
#include "worker/counters.h"
#include "worker/handler.h"
#include "worker/options.h"

namespace tcpfork {

// Exit status meaning "do not restart me": the failure will repeat (nginx's convention).
inline constexpr int kExitFatal = 2;

class Worker {
 public:
  // `listenFd` stays owned by the caller and must outlive the Worker.
  Worker(const WorkerOptions& options, int listenFd, std::unique_ptr<Handler> handler);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until a stop signal; returns the process exit status.
  int run();

  const WorkerCounters& counters() const { return counters_; }

 private:
  static void onSignal(evutil_socket_t signal, short what, void* self);
  static void onDrainDeadline(evutil_socket_t fd, short what, void* self);
  void onNewConnection(UniqueFd fd);
  void release(int fd);
  void beginGracefulStop();

  WorkerOptions options_;
  EventBasePtr base_;  // first member: destroyed last, after every event on it
  std::unique_ptr<Handler> handler_;
  WorkerCounters counters_;
  RateLimitedLog peerLog_;
  ConnectionContext context_;
  Acceptor acceptor_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;  // by fd
  EventPtr sigquit_;
  EventPtr sigterm_;
  EventPtr sigint_;
  EventPtr drainTimer_;
  bool draining_ = false;
};

}  // namespace tcpfork
