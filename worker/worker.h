#pragma once
// Worker: one libevent loop serving one or more listening sockets. Built in
// the worker's main(), owns its listeners and connections and frees them only
// from its loop: a connection that closes is freed by onReap, after the
// callback that closed it has returned. A handler module's destroy runs after
// the last connection is gone. Signals are loop events:
//   SIGQUIT        graceful stop: stop accepting, send the acks owed, close,
//                  exit within drain_timeout (QuitSignal); sent by this
//                  process itself (its handler module), the exit status is
//                  kExitRetiredItself and the slot says why
//   SIGUSR2        retire (the master scales down): take every connection
//                  already queued on the listeners, close them, then as SIGQUIT
//   SIGTERM/SIGINT stop at once
//   SIGUSR1        reopen the log file
//   SIGTRAP        CPU profiling toggle (gperftools; stops by itself too)
//   SIGRTMIN       every thread's stack to the log (StackDump; not a loop event)

#include <memory>
#include <unordered_map>
#include <vector>

#include "base/event_ptr.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "worker/acceptor.h"
#include "worker/buffer_budget.h"
#include "worker/completions.h"
#include "worker/connection.h"
#include "worker/connection_stats.h"
#include "worker/cpu_profiler.h"
#include "worker/heap_profiler.h"
#include "worker/handler.h"
#include "worker/load_shedder.h"
#include "worker/pending_table.h"
#include "worker/quit_signal.h"
#include "contract/worker_settings.h"
#include "worker/receive_clock.h"
#include "worker/slot_publisher.h"
#include "worker/stack_dump.h"
#include "worker/time_slice.h"

namespace tcpfork {

class Worker {
 public:
  // Loads the handler module the settings name (or uses the built-in ack
  // handler). Throws ModuleError, std::system_error.
  Worker(const WorkerArgs& args, std::vector<UniqueFd> listeners, std::unique_ptr<SlotPublisher> publisher);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until a stop signal; returns the process exit status.
  int run();
  // "ack (built in)" or the module's name and path.
  std::string handlerName() const;

 private:
  static void onSignal(evutil_socket_t signal, short what, void* self);
  static void onTick(evutil_socket_t fd, short what, void* self);
  static void onDrainDeadline(evutil_socket_t fd, short what, void* self);
  static void onReap(evutil_socket_t fd, short what, void* self);
  void onNewConnection(UniqueFd fd);
  // A pending request's result, from Completions.
  void onCompletion(uint64_t token, uint8_t result);
  void onCompletionsDelivered();
  // Queues a connection that has closed itself for onReap.
  void onClosed(int fd);
  void beginGracefulStop();
  // A SIGQUIT from this process: its module stopped it (QuitSignal).
  void retireItself();
  void retire();
  void reopenLog();

  WorkerArgs args_;
  const WorkerSettings& settings_ = args_.settings;
  EventBasePtr base_;  // first member: destroyed last, after every event on it
  std::vector<UniqueFd> listeners_;
  std::unique_ptr<SlotPublisher> publisher_;
  stats::Slot* stats_;        // the publisher's slot; null with --no-stats
  StackDump stackDump_;       // writes every thread's stack on stackDumpSignal()
  RateLimitedLog peerLog_;
  RateLimitedLog moduleLog_;  // a module's misuse of the ABI
  PendingTable pendings_;
  Completions completions_;
  // After completions_ (a module may complete until its destroy returns),
  // before connections_ (a connection tells it when it closes).
  std::unique_ptr<Handler> handler_;
  // What the connections share (ConnectionContext), before them: they use
  // it until they are freed.
  ConnectionStats connectionStats_;
  ReceiveClock receiveClock_;
  TimeSlice slice_;
  std::unique_ptr<LoadShedder> shedder_;  // null: overload.shed off
  Dispatcher dispatcher_;
  std::vector<std::byte> scratch_ = std::vector<std::byte>(kReadChunk);
  BufferBudget budget_;  // sheds from connections_ past max_buffered_bytes
  const ConnectionContext context_;
  uint64_t lastConnectionId_ = 0;  // connection ids are unique in the process
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;  // by fd, closed ones until reaped
  std::vector<int> closed_;  // fds of connections closed since the last reap
  std::vector<Connection*> completed_;  // got completions in this run of deliveries; flushed after it
  std::unique_ptr<CpuProfiler> profiler_;
  std::unique_ptr<HeapProfiler> heapProfiler_;
  std::vector<EventPtr> signalEvents_;
  std::unique_ptr<QuitSignal> quit_;
  bool retiredItself_ = false;
  EventPtr tick_;
  uint64_t tickDueNs_ = 0;  // CLOCK_MONOTONIC: when tick_ should fire next
  EventPtr drainTimer_;
  EventPtr reap_;  // made active when closed_ gains its first entry
  bool draining_ = false;
};

}  // namespace tcpfork
