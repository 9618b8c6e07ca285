#include "test/integration/running_worker.h"

#include <stdexcept>

namespace tcpfork::test {
namespace {

std::vector<std::string> workerArgv(int listenFd, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {binary("tcpfork-worker"), "--listen-fd", std::to_string(listenFd)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

}  // namespace

RunningWorker::RunningWorker(const std::vector<std::string>& extraArgs)
    : listener_(listenTcp(parseAddress("127.0.0.1:0"))),
      port_(localAddress(listener_.get()).port()),
      logPath_(tempPath("worker.log")),
      process_(workerArgv(listener_.get(), extraArgs), {listener_.get()}, logPath_) {
  // Ready = a request is answered. The listener already queues connections,
  // so this waits for the worker's loop, not for a port to open.
  bool ready = waitUntil(
      [&] {
        if (!process_.running()) return true;
        try {
          TestConnection probe(port_, 200ms);
          probe.send(submitFrame(0));
          if (probe.read(submitAckFrame(0).size()) != submitAckFrame(0)) return false;
          // Half-close and wait for the worker to close too, so the probe no
          // longer counts against max_connections when the test begins.
          probe.shutdownWrite();
          return probe.closedWithin(2s);
        } catch (const std::exception&) {
          return false;
        }
      },
      10s);
  if (!ready || !process_.running()) {
    throw std::runtime_error("tcpfork-worker did not become ready; its log:\n" + log());
  }
}

}  // namespace tcpfork::test
