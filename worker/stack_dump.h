#pragma once
// StackDump: on stackDumpSignal() every thread of the worker records its
// stack, and a thread of StackDump's own writes them all to the log, each
// frame named (function, source file and line when the binary has them, and
// the file it is in: the worker, a library, or a handler module). The
// master sends the signal when a worker's heartbeat has stalled for
// worker_timeout, and kills the worker hang_dump_grace later, so the log
// says where its loop was stuck (uWSGI's harakiri backtrace, Go's SIGQUIT).
//
// A signal handler may do little: it only captures return addresses
// (backtrace(3), whose unwinder is loaded beforehand) into static slots and
// posts a semaphore. The thread that takes the master's signal passes it on
// to every other thread (tgkill); the dump thread names the frames with
// libdw (elfutils) outside any signal handler, and so works when the loop
// thread is the one stuck.

#include <thread>

#include "stats/layout.h"

namespace tcpfork {

class StackDump {
 public:
  // Installs the handler and starts the dump thread; one per process. Each
  // dump written is counted in `slot` (when not null) for the master.
  // Throws std::system_error when either fails.
  explicit StackDump(stats::Slot* slot);
  ~StackDump();
  StackDump(const StackDump&) = delete;
  StackDump& operator=(const StackDump&) = delete;

 private:
  void run();

  stats::Slot* slot_;
  std::thread thread_;
};

}  // namespace tcpfork
