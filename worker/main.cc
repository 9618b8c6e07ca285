// tcpfork-worker: serves the tcpfork protocol on its listening sockets.
// Under the master it gets --listen-fd (one per listen address), its stats
// slot and the master's pid; standalone (development) it binds --listen
// itself with SO_REUSEPORT, so several can share a port.

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <exception>

#include "base/log.h"
#include "base/socket.h"
#include "contract/worker_settings.h"
#include "worker/handler_module.h"
#include "worker/worker.h"

using namespace tcpfork;

namespace {

// Checks that an inherited fd is a listening socket, makes it non-blocking and
// close-on-exec, and takes ownership.
UniqueFd adoptListener(int fd) {
  int listening = 0;
  socklen_t length = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) {
    throw std::runtime_error("--listen-fd " + std::to_string(fd) + " is not a listening socket");
  }
  setNonBlocking(fd);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return UniqueFd(fd);
}

// tcpfork -t: the module's init and destroy, in this process rather than the
// master's, with a private slot for the counters it declares.
int checkHandler(const WorkerArgs& options) {
  try {
    SlotPublisher publisher;
    EventBasePtr base = newEventBase();
    Completions completions(base.get(), [](uint64_t, uint8_t) {}, [] {});
    std::string name;
    {
      HandlerModule module(options.settings.handler.module, options.settings.handler.configJson,
                           ModuleHostInfo{uint32_t(options.index), uint32_t(options.generation), &publisher.slot(), false},
                           completions);
      name = module.describe();
    }
    std::printf("handler module %s: init and destroy passed\n", name.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return kExitFatal;
  }
}

// rlimit_nofile and cpu_affinity, before anything is opened or runs: the
// master checked both against this machine when it read the config, so a
// failure here is fatal (it would repeat).
void applyPlacement(const WorkerArgs& options) {
  if (uint64_t nofile = options.settings.rlimitNofile; nofile > 0) {
    rlimit limit{rlim_t(nofile), rlim_t(nofile)};
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      throw std::system_error(errno, std::generic_category(), fmt::format("setrlimit(RLIMIT_NOFILE, {})", nofile));
    }
  }
  if (options.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(options.cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
      throw std::system_error(errno, std::generic_category(), fmt::format("sched_setaffinity(CPU {})", options.cpu));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  WorkerArgs options;
  try {
    options = parseWorkerArgs(std::vector<std::string>(argv, argv + argc));
  } catch (const WorkerArgsError& e) {
    std::fputs(e.out().c_str(), stdout);
    std::fputs(e.err().c_str(), stderr);
    return e.exitCode();
  }
  const WorkerSettings& settings = options.settings;
  if (options.parentPid > 0) {
    // Die with the master; and if it died before we got here, do not serve.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != options.parentPid) return 0;
  }
  initLogging(options.role, settings.logLevel);
  if (options.checkHandler) return checkHandler(options);
  // Peers that vanish surface as EPIPE from write(), not as a fatal signal.
  std::signal(SIGPIPE, SIG_IGN);
  // Blocks from 256 KiB up (the buffers of frames several reads long) each
  // get a mapping of their own, returned to the kernel when freed. glibc
  // would otherwise raise this threshold as such blocks are freed and serve
  // the next ones from the heap, where freed buffers stay resident: after
  // max_buffered_bytes sheds a flood of parked 1 MiB frames, about 12 MiB
  // over the budget (tests: Limits.*). Not lower: a connection's
  // OutputBuffer holds one read batch's acks until they are sent; it grows
  // by doubling from room for one full 64 KiB read's acks (5,041 of 14
  // bytes), so a batch of one or two full reads takes up to 138 KiB, which
  // then waits in the worker's spare for the next batch (OutputBuffer::Spare)
  // or is freed. A batch of three or four (a peer with over 128 KiB of
  // requests waiting) takes 276 KiB, past this threshold: a mapping of its
  // own, kept as the spare too (up to 1 MiB). (Only on glibc's
  // malloc: under tcmalloc, the worker's allocator, mallopt does nothing and
  // the worker's tick returns freed pages instead: worker/worker.cc.)
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  try {
    if (!settings.logFile.empty()) redirectOutputTo(settings.logFile);
    applyPlacement(options);
    std::vector<UniqueFd> listeners;
    if (!options.listen.empty()) {
      listeners.push_back(listenTcp(parseAddress(options.listen)));
    } else {
      for (int fd : options.listenFds) listeners.push_back(adoptListener(fd));
    }
    std::string addresses;
    for (const auto& l : listeners) addresses += (addresses.empty() ? "" : ", ") + localAddress(l.get()).toString();

    auto publisher = options.statsFd < 0
                         ? std::make_unique<SlotPublisher>()
                         : std::make_unique<SlotPublisher>(settings.name, UniqueFd(options.statsFd),
                                                           static_cast<uint32_t>(options.slot), options.generation,
                                                           options.index);
    Worker worker(options, std::move(listeners), std::move(publisher));
    spdlog::info("serving on {} (generation {}, max_connections={}, max_frame_bytes={}, idle_timeout={}ms, handler {}{})",
                 addresses, options.generation, settings.maxConnections, settings.limits.maxFrameBytes,
                 settings.limits.idleTimeout.count(), worker.handlerName(),
                 options.cpu >= 0 ? fmt::format(", on CPU {}", options.cpu) : "");
    return worker.run();
  } catch (const std::exception& e) {
    spdlog::critical("cannot serve: {}", e.what());
    return kExitFatal;
  }
}
