#pragma once
// The master-to-worker contract: everything a worker runs with, typed, with
// the one set of defaults (Config starts from them), and its command line,
// written by toArgv (in the master) and read back by parseWorkerArgs (in the
// worker). A worker never reads the config file. The settings are declared
// once, in worker_setting_table.h: toArgv, parseWorkerArgs and the config
// reader all go through that table, so a setting's flag, form and range are
// the same in the file and on the command line; test/contract_test.cc checks
// that the table covers every field of WorkerSettings and that each field
// survives the command line. Linked by both tcpfork and tcpfork-worker;
// nothing here belongs to either.

#include <csignal>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/frame.h"

namespace tcpfork {

struct ConnectionLimits {
  size_t maxFrameBytes = protocol::kDefaultMaxFrameBytes;
  std::chrono::milliseconds idleTimeout{60'000};  // 0 = never
  // Reading a connection stops while its unsent acks exceed the high mark and
  // resumes below the low mark (half of it), so a client that never reads
  // cannot grow memory.
  size_t outputHighWater = 256 * 1024;
  size_t outputLowWater() const { return outputHighWater / 2; }

  bool operator==(const ConnectionLimits&) const = default;
};

// The request handler: the built-in ack, or a module (DESIGN.md, "Handler
// modules") that the worker loads itself; the master never opens it.
struct HandlerSettings {
  std::string module;             // path of the .so; empty = the built-in ack handler
  std::string configJson = "{}";  // handler.config as JSON text, for the module's init
  // A connection with more requests than this awaiting complete() is not
  // read until they drop to it.
  size_t maxPending = 1024;
  // A connection with requests awaiting complete() of which none completes
  // for this long is closed (a stuck backend must not hold descriptors and
  // max_connections slots for ever); 0 = wait for ever.
  std::chrono::milliseconds pendingTimeout{60'000};

  bool operator==(const HandlerSettings&) const = default;
};

// overload.shed: whether a worker sheds requests by queueing delay.
enum class ShedMode : uint8_t {
  kAuto,  // on with a handler module, off for the built-in ack
  kOn,
  kOff,
};

// Overload shedding (worker/overload_detector.h): a worker is overloaded
// while the shortest queueing delay of its requests over `interval` exceeds
// `target`; while it is, a request that waited over 2 x target is answered
// busy (255) without reaching the handler.
struct OverloadSettings {
  ShedMode shed = ShedMode::kAuto;
  std::chrono::milliseconds target{5};
  std::chrono::milliseconds interval{100};

  bool operator==(const OverloadSettings&) const = default;
};

// What every worker of one generation shares: the config's worker keys.
struct WorkerSettings {
  size_t maxConnections = 10'000;
  ConnectionLimits limits;
  // What one worker's connections may hold in unfinished frames and unsent
  // acks, summed; past it the worker closes those holding the most. Each
  // connection is bounded (max_frame_bytes in, output_high_water out) but
  // max_connections of them are not: 64 MiB is 64 connections mid-way
  // through a largest (1 MiB) frame, far above what a serving worker holds
  // (an ack is 14 bytes, frames are small), and small beside a host's memory.
  size_t maxBufferedBytes = 64 * 1024 * 1024;
  // The worker's RLIMIT_NOFILE (soft and hard); 0: as inherited.
  uint64_t rlimitNofile = 0;
  std::chrono::milliseconds drainTimeout{10'000};
  std::string logLevel = "info";
  std::string logFile;  // reopened on SIGUSR1; empty = stderr as inherited
  std::string name = "tcpfork";  // instance name, for profile file names
  std::string profileDir;        // empty: CPU profiling unavailable
  std::chrono::milliseconds profileDuration{60'000};
  // tcmalloc samples one allocation per this many bytes allocated, on
  // average, for heap profiles; 0 = none. The master passes it in the
  // worker's environment (TCMALLOC_SAMPLE_PARAMETER), which tcmalloc reads
  // before main.
  size_t heapSample = 512 * 1024;
  HandlerSettings handler;
  OverloadSettings overload;

  // overload.shed resolved: auto sheds with a module only, since the
  // built-in ack answers faster than any queue it could cut would cost.
  bool sheds() const {
    return overload.shed == ShedMode::kOn || (overload.shed == ShedMode::kAuto && !handler.module.empty());
  }

  bool operator==(const WorkerSettings&) const = default;
};

// A worker's exit status meaning "do not restart me at once: the failure
// will repeat" (a listener it cannot use, a bad argument; nginx's
// convention). The master logs it loudly, shows the index as
// workers{state="fatal"} and retries only after a backoff.
inline constexpr int kExitFatal = 2;

// A worker's exit status after a graceful stop it asked for itself: a
// SIGQUIT sent by its own process, which a handler module sends when it can
// no longer serve (the journal, after a failed fdatasync). Its slot's
// exitReason quotes the module's last error. The master starts a successor
// at once, as for a recycle, and counts no crash; only a run of them (5
// within 10 s) backs off, so a failing disk does not spin.
inline constexpr int kExitRetiredItself = 3;

// Descriptors a worker needs besides one per connection (listeners, log,
// libevent's, a module's files): what rlimit_nofile must leave over
// max_connections.
inline constexpr uint64_t kWorkerOwnDescriptors = 64;

// The signal that makes a worker write the stack of every thread to its log
// (worker/stack_dump.h): the master sends it to a worker whose heartbeat
// has stalled, hang_dump_grace before it kills it. The first real-time
// signal free for applications (kill -s RTMIN), so it takes nothing from
// the signals the worker already answers.
inline int stackDumpSignal() { return SIGRTMIN; }
inline constexpr const char* kStackDumpSignalName = "SIGRTMIN";

// One worker process's command line: the generation's settings and where
// this process stands.
struct WorkerArgs {
  WorkerSettings settings;
  std::string role = "worker";  // shown in log lines
  uint64_t index = 0;           // which listeners it serves
  uint64_t generation = 0;
  int cpu = -1;                 // pinned to this CPU (cpu_affinity); -1: not pinned
  // The stats segment to publish into, an inherited descriptor (the worker
  // maps it and closes it); -1 = none.
  int statsFd = -1;
  int slot = -1;
  int parentPid = 0;            // exit when this process (the master) is gone
  std::vector<int> listenFds;   // under a master: inherited listening sockets
  std::string listen;           // standalone: bind our own SO_REUSEPORT socket
  bool noStats = false;         // benchmarking: measure what counting costs
  // tcpfork -t: load the handler module, run its init and destroy, exit
  // (0, or kExitFatal with the module's message on stderr). Serves nothing.
  bool checkHandler = false;

  bool operator==(const WorkerArgs&) const = default;
};

// --help, --version or a usage error: what CLI11 would print, and its exit
// code (0 after --help or --version, 100 and up for usage errors).
class WorkerArgsError : public std::runtime_error {
 public:
  WorkerArgsError(std::string out, std::string err, int exitCode)
      : std::runtime_error(err.empty() ? out : err), out_(std::move(out)), err_(std::move(err)), exitCode_(exitCode) {}
  const std::string& out() const { return out_; }  // for stdout
  const std::string& err() const { return err_; }  // for stderr
  int exitCode() const { return exitCode_; }

 private:
  std::string out_;
  std::string err_;
  int exitCode_;
};

// The arguments after argv[0] that parseWorkerArgs reads back as `args`.
std::vector<std::string> toArgv(const WorkerArgs& args);
// Parses a worker's command line (argv[0] first). Throws WorkerArgsError.
WorkerArgs parseWorkerArgs(const std::vector<std::string>& argv);

}  // namespace tcpfork
