#include "worker/worker.h"

#include <csignal>
#include <system_error>
#include <vector>

namespace tcpfork {
namespace {

EventBasePtr newEventBase() {
  EventBasePtr base(event_base_new());
  if (!base) throw std::system_error(ENOMEM, std::generic_category(), "event_base_new()");
  return base;
}

EventPtr newSignalEvent(event_base* base, int signal, event_callback_fn callback, void* arg) {
  EventPtr ev(evsignal_new(base, signal, callback, arg));
  if (!ev || event_add(ev.get(), nullptr) != 0) {
    throw std::system_error(EINVAL, std::generic_category(), "evsignal_new(" + std::string(strsignal(signal)) + ")");
  }
  return ev;
}

}  // namespace

Worker::Worker(const WorkerOptions& options, int listenFd, std::unique_ptr<Handler> handler)
    : options_(options),
      base_(newEventBase()),
      handler_(std::move(handler)),
      context_{base_.get(), handler_.get(), options.limits, &counters_, &peerLog_,
               [this](int fd) { release(fd); }},
      acceptor_(base_.get(), listenFd, counters_, [this](UniqueFd fd) { onNewConnection(std::move(fd)); }),
      sigquit_(newSignalEvent(base_.get(), SIGQUIT, &Worker::onSignal, this)),
      sigterm_(newSignalEvent(base_.get(), SIGTERM, &Worker::onSignal, this)),
      sigint_(newSignalEvent(base_.get(), SIGINT, &Worker::onSignal, this)),
      drainTimer_(evtimer_new(base_.get(), &Worker::onDrainDeadline, this)) {
  if (!drainTimer_) throw std::system_error(ENOMEM, std::generic_category(), "evtimer_new(drain)");
}

Worker::~Worker() {
  // Connections hold events on base_; free them first.
  connections_.clear();
}

int Worker::run() {
  acceptor_.enable();
  if (event_base_dispatch(base_.get()) < 0) {
    spdlog::error("event_base_dispatch() failed");
    return 1;
  }
  spdlog::info("stopped: accepted={} rejected={} requests={} acks={} bytes_in={} bytes_out={} open_connections={}",
               counters_.connectionsAccepted, counters_.connectionsRejected, counters_.requestsReceived,
               counters_.responsesSent, counters_.bytesIn, counters_.bytesOut, connections_.size());
  return 0;
}

void Worker::onSignal(evutil_socket_t signal, short, void* self) {
  auto* worker = static_cast<Worker*>(self);
  if (signal == SIGQUIT) {
    worker->beginGracefulStop();
    return;
  }
  spdlog::info("{}: stopping now", strsignal(signal));
  event_base_loopbreak(worker->base_.get());
}

void Worker::onDrainDeadline(evutil_socket_t, short, void* self) {
  auto* worker = static_cast<Worker*>(self);
  spdlog::warn("drain_timeout reached with {} connections open; closing them", worker->connections_.size());
  event_base_loopbreak(worker->base_.get());
}

void Worker::beginGracefulStop() {
  if (draining_) return;
  draining_ = true;
  acceptor_.disable();
  spdlog::info("graceful stop: draining {} connections (deadline {} ms)", connections_.size(),
               options_.drainTimeout.count());
  if (connections_.empty()) {
    event_base_loopexit(base_.get(), nullptr);
    return;
  }
  timeval deadline{static_cast<time_t>(options_.drainTimeout.count() / 1000),
                   static_cast<suseconds_t>(options_.drainTimeout.count() % 1000 * 1000)};
  evtimer_add(drainTimer_.get(), &deadline);
  // drain() may release the connection at once, so walk a copy of the keys.
  std::vector<int> fds;
  fds.reserve(connections_.size());
  for (const auto& entry : connections_) fds.push_back(entry.first);
  for (int fd : fds) {
    if (auto it = connections_.find(fd); it != connections_.end()) it->second->drain();
  }
}

void Worker::onNewConnection(UniqueFd fd) {
  if (connections_.size() >= options_.maxConnections) {
    ++counters_.connectionsRejected;
    peerLog_.warn("max_connections ({}) reached: closing a new connection", options_.maxConnections);
    return;  // fd closes here
  }
  ++counters_.connectionsAccepted;
  int key = fd.get();
  try {
    auto connection = std::make_unique<Connection>(context_, std::move(fd));
    connection->start();
    connections_.emplace(key, std::move(connection));
  } catch (const std::exception& e) {
    peerLog_.warn("dropping new connection: {}", e.what());
  }
}

void Worker::release(int fd) {
  connections_.erase(fd);
  if (draining_ && connections_.empty()) event_base_loopexit(base_.get(), nullptr);
}

}  // namespace tcpfork
