// tcpfork-worker: serves the tcpfork protocol on one listening socket.
// Under the master it gets --listen-fd; standalone (development) it binds
// --listen itself with SO_REUSEPORT, so several can share a port.

#include <sys/socket.h>

#include <csignal>
#include <exception>

#include "base/log.h"
#include "base/socket.h"
#include "worker/options.h"
#include "worker/worker.h"

using namespace tcpfork;

namespace {

// Checks that an inherited fd is a listening socket and makes it non-blocking.
void adoptListener(int fd) {
  int listening = 0;
  socklen_t length = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) {
    throw std::runtime_error("--listen-fd " + std::to_string(fd) + " is not a listening socket");
  }
  setNonBlocking(fd);
}

}  // namespace

int main(int argc, char** argv) {
  WorkerOptions options = parseWorkerOptions(argc, argv);
  initLogging(options.role, options.logLevel);
  // Peers that vanish surface as EPIPE from write(), not as a fatal signal.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    UniqueFd ownListener;
    int listenFd = options.listenFd;
    if (!options.listen.empty()) {
      ownListener = listenTcp(parseAddress(options.listen));
      listenFd = ownListener.get();
    } else {
      adoptListener(listenFd);
    }
    Worker worker(options, listenFd, std::make_unique<AckHandler>());
    spdlog::info("serving on {} (max_connections={}, max_frame_bytes={}, idle_timeout={}ms)",
                 localAddress(listenFd).toString(), options.maxConnections, options.limits.maxFrameBytes,
                 options.limits.idleTimeout.count());
    return worker.run();
  } catch (const std::exception& e) {
    spdlog::critical("cannot serve: {}", e.what());
    return kExitFatal;
  }
}
