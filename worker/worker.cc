#include "worker/worker.h"

#include "worker/handler_module.h"

#include <unistd.h>

#include <cerrno>

#include <csignal>
#include <cstring>
#include <system_error>

#include "base/rx_timestamp.h"
#include "worker/allocator.h"

namespace tcpfork {
namespace {

// Heartbeat, loop lag and parent check period: well under any sensible
// worker_timeout.
constexpr timeval kTickInterval{0, long(stats::kLoopTickNs / 1000)};

// tcmalloc keeps the pages it frees for reuse. Past this many, each tick
// gives the rest back, so that after a burst RSS, which max_rss is judged
// by, falls within a tick. Not at every free, except under the budget's
// pressure (BufferBudget::Hooks::pressure): a pipelined worker returning
// every freed page faulted its read buffers' pages in again on every batch
// (34,634 page faults in 3 s against glibc's 441; 6% more CPU per ack,
// median of 7 paired rounds).
constexpr size_t kFreePagesKept = 4 << 20;

}  // namespace

namespace {

// A module that cannot load or init is a fatal exit; its reason goes into
// the slot as well as the log, for the master to quote.
std::unique_ptr<Handler> makeHandler(const WorkerArgs& args, SlotPublisher& publisher, Completions& completions) {
  if (args.settings.handler.module.empty()) return std::make_unique<AckHandler>();
  ModuleHostInfo info{uint32_t(args.index), uint32_t(args.generation), &publisher.slot(), !args.noStats};
  try {
    return std::make_unique<HandlerModule>(args.settings.handler.module, args.settings.handler.configJson, info,
                                           completions);
  } catch (const ModuleError& e) {
    publisher.setExitReason(e.what());
    throw;
  }
}

// `idle` as a libevent common timeout on `base` (see ConnectionContext);
// null for 0 (none).
const timeval* idleTimer(event_base* base, std::chrono::milliseconds idle) {
  if (idle.count() == 0) return nullptr;
  timeval tv = toTimeval(idle);
  const timeval* common = event_base_init_common_timeout(base, &tv);
  if (!common) throw std::system_error(ENOMEM, std::generic_category(), "event_base_init_common_timeout");
  return common;
}

}  // namespace

Worker::Worker(const WorkerArgs& args, std::vector<UniqueFd> listeners, std::unique_ptr<SlotPublisher> publisher)
    : args_(args),
      base_(newEventBase()),
      listeners_(std::move(listeners)),
      publisher_(std::move(publisher)),
      stats_(args.noStats ? nullptr : &publisher_->slot()),
      stackDump_(stats_),
      completions_(
          base_.get(), [this](uint64_t token, uint8_t result) { onCompletion(token, result); },
          [this] { onCompletionsDelivered(); }),
      handler_(makeHandler(args, *publisher_, completions_)),
      connectionStats_(stats_),
      shedder_(settings_.sheds() ? std::make_unique<LoadShedder>(settings_.overload, stats_, slice_) : nullptr),
      dispatcher_(*handler_, pendings_, slice_, shedder_.get(), connectionStats_, settings_.limits.maxFrameBytes),
      budget_(settings_.maxBufferedBytes, pendings_,
              {[this](bool on) {
                 if (draining_) return;
                 for (auto& acceptor : acceptors_) on ? acceptor->enable() : acceptor->disable();
               },
               [this] { return budget_.shedBiggest(connections_); },
               [this] {
                 for (const auto& entry : connections_) entry.second->resume();
               },
               [](bool on) { allocator::returnFreedPagesAtOnce(on); }}),
      context_{base_.get(),
               idleTimer(base_.get(), settings_.limits.idleTimeout),
               settings_,
               dispatcher_,
               budget_,
               connectionStats_,
               receiveClock_,
               scratch_,
               peerLog_,
               [this](int fd) { onClosed(fd); }},
      tick_(evtimer_new(base_.get(), &Worker::onTick, this)),
      drainTimer_(evtimer_new(base_.get(), &Worker::onDrainDeadline, this)),
      reap_(event_new(base_.get(), -1, 0, &Worker::onReap, this)) {
  if (!tick_ || !drainTimer_ || !reap_) throw std::system_error(ENOMEM, std::generic_category(), "event_new(worker timers)");
  profiler_ = std::make_unique<CpuProfiler>(
      base_.get(), ProfileOptions{settings_.profileDir, settings_.name, args.index, settings_.profileDuration},
      publisher_->slot());
  heapProfiler_ = std::make_unique<HeapProfiler>(
      ProfileOptions{settings_.profileDir, settings_.name, args.index, settings_.profileDuration});
  for (const UniqueFd& listener : listeners_) {
    // Accepted sockets inherit it: request_duration_seconds starts from the
    // kernel's receive stamp, and so does the queueing delay shedding judges
    // (a shared listener is set by each worker alike).
    if ((stats_ || shedder_) && !enableReceiveTimestamps(listener.get())) {
      spdlog::warn("setsockopt(SO_TIMESTAMPNS) on listener fd {}: {}; requests are timed from their read",
                   listener.get(), std::strerror(errno));
    }
    acceptors_.push_back(std::make_unique<Acceptor>(base_.get(), listener.get(), stats_,
                                                    [this](UniqueFd fd) { onNewConnection(std::move(fd)); }));
  }
  quit_ = std::make_unique<QuitSignal>(base_.get(), [this](bool fromItself) {
    if (fromItself) {
      retireItself();
    } else {
      beginGracefulStop();
    }
  });
  for (int signal : {SIGUSR2, SIGTERM, SIGINT, SIGUSR1, SIGTRAP, SIGURG}) {
    EventPtr ev(evsignal_new(base_.get(), signal, &Worker::onSignal, this));
    if (!ev || event_add(ev.get(), nullptr) != 0) {
      throw std::system_error(EINVAL, std::generic_category(), std::string("evsignal_new(") + strsignal(signal) + ")");
    }
    signalEvents_.push_back(std::move(ev));
  }
}

Worker::~Worker() {
  // Connections hold events on base_; free them first.
  connections_.clear();
  connectionStats_.openConnections(0);
}

int Worker::run() {
  for (auto& acceptor : acceptors_) acceptor->enable();
  tickDueNs_ = monotonicNanos() + stats::kLoopTickNs;
  evtimer_add(tick_.get(), &kTickInterval);
  publisher_->setState(stats::WorkerState::kServing);
  if (event_base_dispatch(base_.get()) < 0) {
    spdlog::error("event_base_dispatch() failed");
    return 1;
  }
  profiler_->stop();  // a stop signal mid-profile still leaves a complete file
  if (stats_) {
    auto value = [&](stats::Counter c) { return stats::load(stats_->totals.counters[stats::index(c)]); };
    using C = stats::Counter;
    spdlog::info("stopped: accepted={} rejected={} requests={} acks={} bytes_in={} bytes_out={} open_connections={}",
                 value(C::kConnectionsAccepted), value(C::kConnectionsRejected), value(C::kRequestsReceived),
                 value(C::kResponsesSent), value(C::kBytesReceived), value(C::kBytesSent), connections_.size());
  } else {
    spdlog::info("stopped (stats off): open_connections={}", connections_.size());
  }
  return retiredItself_ ? kExitRetiredItself : 0;
}

void Worker::onSignal(evutil_socket_t signal, short, void* self) {
  auto* worker = static_cast<Worker*>(self);
  switch (signal) {
    case SIGUSR2:
      worker->retire();
      return;
    case SIGUSR1:
      worker->reopenLog();
      return;
    case SIGTRAP:
      worker->profiler_->toggle();
      return;
    case SIGURG:
      (void)worker->heapProfiler_->write("SIGURG");
      return;
    default:
      spdlog::info("{}: stopping now", strsignal(signal));
      event_base_loopbreak(worker->base_.get());
  }
}

void Worker::onTick(evutil_socket_t, short, void* self) {
  auto* worker = static_cast<Worker*>(self);
  // Re-armed from now, not persistent: each tick's lateness is its own, not
  // a sum carried over from the ticks before it.
  uint64_t now = monotonicNanos();
  worker->publisher_->loopRan(now > worker->tickDueNs_ ? now - worker->tickDueNs_ : 0);
  worker->tickDueNs_ = now + stats::kLoopTickNs;
  evtimer_add(worker->tick_.get(), &kTickInterval);
  if (worker->shedder_) worker->shedder_->tick(now);
  allocator::releaseFreePagesOver(kFreePagesKept);
  worker->budget_.tick();
  // PR_SET_PDEATHSIG covers most ways a master dies; this covers the rest
  // (and the window before the worker set it).
  if (worker->args_.parentPid > 0 && ::getppid() != worker->args_.parentPid) {
    spdlog::warn("master (pid {}) is gone; stopping now", worker->args_.parentPid);
    event_base_loopbreak(worker->base_.get());
  }
}

void Worker::onDrainDeadline(evutil_socket_t, short, void* self) {
  auto* worker = static_cast<Worker*>(self);
  spdlog::warn("drain_timeout reached with {} connections open; closing them", worker->connections_.size());
  event_base_loopbreak(worker->base_.get());
}

void Worker::reopenLog() {
  if (settings_.logFile.empty()) return;
  try {
    redirectOutputTo(settings_.logFile);
    spdlog::info("reopened log file {}", settings_.logFile);
  } catch (const std::exception& e) {
    spdlog::error("cannot reopen log file: {}", e.what());
  }
}

void Worker::retire() {
  if (draining_) return;
  // The master has dropped its copy of our listeners: whatever is queued on
  // them now is ours to serve, and closing them must find the queue empty.
  for (auto& acceptor : acceptors_) acceptor->acceptQueued();
  acceptors_.clear();
  listeners_.clear();
  spdlog::info("retiring: listeners closed");
  beginGracefulStop();
}

void Worker::retireItself() {
  // The first stop decides: a worker already draining at the master's word
  // is leaving anyway.
  if (draining_) return;
  retiredItself_ = true;
  auto* module = dynamic_cast<const HandlerModule*>(handler_.get());
  std::string error = module ? module->lastError() : "";
  std::string reason = !module          ? "a SIGQUIT from its own process"
                       : error.empty() ? "its handler module " + module->describe() + " stopped it"
                                       : "its handler module " + module->describe() + " stopped it: " + error;
  publisher_->setExitReason(reason);
  spdlog::warn("SIGQUIT from this process ({}): graceful stop, then exit status {}", reason, kExitRetiredItself);
  beginGracefulStop();
}

void Worker::beginGracefulStop() {
  if (draining_) return;
  draining_ = true;
  publisher_->setState(stats::WorkerState::kDraining);
  for (auto& acceptor : acceptors_) acceptor->disable();
  spdlog::info("graceful stop: draining {} connections (deadline {} ms)", connections_.size(),
               settings_.drainTimeout.count());
  if (connections_.empty()) {
    event_base_loopexit(base_.get(), nullptr);
    return;
  }
  timeval deadline = toTimeval(settings_.drainTimeout);
  evtimer_add(drainTimer_.get(), &deadline);
  // A connection that closes here is only queued, so the map stays as it is;
  // onReap ends the loop once the last one is freed.
  for (const auto& entry : connections_) entry.second->drain();
}

void Worker::onNewConnection(UniqueFd fd) {
  if (connections_.size() - closed_.size() >= settings_.maxConnections) {
    count(stats_, stats::Counter::kConnectionsRejected, 1);
    peerLog_.warn("max_connections ({}) reached: closing a new connection", settings_.maxConnections);
    return;  // fd closes here
  }
  count(stats_, stats::Counter::kConnectionsAccepted, 1);
  int key = fd.get();
  try {
    auto connection = std::make_unique<Connection>(context_, std::move(fd), ++lastConnectionId_);
    connection->start();
    connections_.emplace(key, std::move(connection));
    connectionStats_.openConnections(connections_.size());
  } catch (const std::exception& e) {
    peerLog_.warn("dropping new connection: {}", e.what());
  }
}

void Worker::onClosed(int fd) {
  closed_.push_back(fd);
  // An active event runs after the current callback has returned, in the
  // same loop pass. Until then the connection keeps its fd open, so no new
  // connection can take its key in connections_.
  if (closed_.size() == 1) event_active(reap_.get(), EV_TIMEOUT, 0);
}

void Worker::onCompletion(uint64_t token, uint8_t result) {
  PendingTable::Entry entry{};
  switch (pendings_.take(token, entry)) {
    case PendingTable::Found::kLive:
      if (entry.connection->complete(entry.sequence, result)) completed_.push_back(entry.connection);
      return;
    case PendingTable::Found::kOrphan:
      count(stats_, stats::Counter::kHandlerCompletionsDropped, 1);
      return;
    case PendingTable::Found::kUnknown:
      moduleLog_.warn("handler module {}: complete() for a request not pending (completed twice?); ignored",
                      handlerName());
      return;
  }
}

void Worker::onCompletionsDelivered() {
  // A closed connection among them is still ours: it is freed in onReap,
  // which runs after this callback.
  for (Connection* connection : completed_) connection->flushCompleted();
  completed_.clear();
  budget_.pendingsDone();
}

std::string Worker::handlerName() const {
  auto* module = dynamic_cast<const HandlerModule*>(handler_.get());
  return module ? module->describe() : "ack (built in)";
}

void Worker::onReap(evutil_socket_t, short, void* self) {
  auto* worker = static_cast<Worker*>(self);
  for (int fd : worker->closed_) worker->connections_.erase(fd);
  worker->closed_.clear();
  worker->connectionStats_.openConnections(worker->connections_.size());
  worker->budget_.pendingsDone();  // what the closed ones held is freed
  if (worker->draining_ && worker->connections_.empty()) event_base_loopexit(worker->base_.get(), nullptr);
}

}  // namespace tcpfork
