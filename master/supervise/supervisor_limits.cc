// The Supervisor's limits on a worker process. The heartbeat: a worker
// silent for worker_timeout is asked for a stack dump, then killed
// hang_dump_grace later. Recycling (gunicorn's max_requests, uWSGI's
// reload-on-rss and max-worker-lifetime): a serving worker past one is
// replaced. Graceful limits only mark its row; reconcile() then starts a
// successor on the same sockets (the row no longer stands for its index) and
// drains the old worker with QUIT once the successor serves, so no
// connection finds the index without a worker. max_rss_hard kills at once,
// or hang_dump_grace after asking for a heap profile; max_rss asks for one too.
#include <signal.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <random>

#include "base/socket.h"
#include "master/supervise/supervisor.h"
#include "stats/heartbeat.h"
#include "stats/process_info.h"
#include "stats/slot_allocator.h"

namespace tcpfork {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

// A heartbeat this fresh says the worker's loop runs; an older one is
// checkHeartbeat's to judge.
constexpr uint64_t kLoopRunsMs = 1000;

}  // namespace

void Supervisor::checkHeartbeat(Row& row, Clock::time_point now) {
  bool watched = row.state == State::kStarting || row.state == State::kServing || row.state == State::kDraining;
  if (!watched || lifecycle_.stopping()) return;
  const stats::Slot& slot = segment_.slot(row.slot);
  uint64_t silentMs = stats::silentForMs(slot);
  auto timeoutMs = uint64_t(current_.settings->workerTimeout.count());
  // A loop can run late for a while under a slow module and a backlog (each
  // connection's turn is bounded, but many connections add up): what proves
  // a worker is stuck is that its requests stop moving too.
  auto counter = [&](stats::Counter c) { return stats::load(slot.totals.counters[stats::index(c)]); };
  uint64_t progress = counter(stats::Counter::kRequestsReceived) + counter(stats::Counter::kResponsesSent);
  if (!row.progressAt || progress != row.progress) {
    row.progress = progress;
    row.progressAt = now;
  }
  auto stuckMs = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(now - *row.progressAt).count());
  if (silentMs > timeoutMs && stuckMs <= timeoutMs) {
    if (!row.lateButBusy) {
      spdlog::warn("worker {} (pid {}) has not run its loop timer for {} ms (worker_timeout {}) but is still "
                   "completing requests: busy, not hung; not killing it",
                   row.index, row.pid, silentMs, timeoutMs);
    }
    row.lateButBusy = true;
    silentMs = stuckMs;
  } else if (silentMs <= timeoutMs) {
    row.lateButBusy = false;
  }
  if (silentMs <= timeoutMs) {
    if (row.killAt) spdlog::warn("worker {} (pid {}) beats again; not killing it", row.index, row.pid);
    row.killAt.reset();
    return;
  }
  Millis grace = current_.settings->hangDumpGrace;
  if (!row.killAt && grace.count() > 0) {
    spdlog::error("worker {} (pid {}) has not beaten for {} ms (worker_timeout {}); asking it for its stacks "
                  "(signal {}), killing it in {}",
                  row.index, row.pid, silentMs, timeoutMs, kStackDumpSignalName, describeSeconds(grace));
    row.stackDumps = stats::load(slot.stackDumps);
    ::kill(row.pid, stackDumpSignal());
    row.killAt = now + grace;
    return;
  }
  if (row.killAt && now < *row.killAt) return;
  if (!row.killAt) {
    spdlog::error("worker {} (pid {}) has not beaten for {} ms (worker_timeout {}); killing it", row.index, row.pid,
                  silentMs, timeoutMs);
  } else if (stats::load(slot.stackDumps) == row.stackDumps) {
    spdlog::error("worker {} (pid {}) wrote no stack dump within hang_dump_grace (stopped, or too far gone to "
                  "answer); killing it",
                  row.index, row.pid);
  } else {
    spdlog::error("worker {} (pid {}) wrote its stacks to the log above; killing it", row.index, row.pid);
  }
  row.killAt.reset();
  ::kill(row.pid, SIGKILL);
  // A draining worker that hangs would otherwise live until its drain
  // deadline with its connections unanswered and, after TTOU, its listening
  // socket still taking a share of new connections.
  transition(row, row.state == State::kDraining ? State::kKilled : State::kHung);
}

void Supervisor::drawLimits(Row& row) {
  const RecycleLimits& limits = row.generation.settings->recycle;
  auto upTo = [&](uint64_t most) { return most ? std::uniform_int_distribution<uint64_t>(0, most)(jitter_) : 0; };
  row.recycling.reset();
  row.maxRequests = limits.maxRequests ? limits.maxRequests + upTo(limits.maxRequestsJitter) : 0;
  row.retireAt.reset();
  if (limits.maxLifetime.count() > 0) {
    row.retireAt = row.startedAt + limits.maxLifetime + Millis(upTo(uint64_t(limits.maxLifetimeJitter.count())));
  }
}

// max_rss_hard holds for every serving worker, one already being recycled
// included (its memory can go on growing until its successor serves); the
// graceful limits for the current generation's, once each.
void Supervisor::checkLimits(Row& row, Clock::time_point now) {
  if (row.state != State::kServing || lifecycle_.stopping()) return;
  const RecycleLimits& limits = row.generation.settings->recycle;
  uint64_t rss = 0;
  if (limits.maxRss > 0 || limits.maxRssHard > 0) {
    if (auto info = stats::readProcessInfo(row.pid)) rss = info->residentBytes;
  }
  auto count = [&](stats::RecycleReason reason) {
    stats::addToHeader(segment_.header(), stats::recycleReason(reason).field);
  };
  if (limits.maxRssHard > 0 && (rss >= limits.maxRssHard || row.rssKillAt)) {
    // Its heap profile first (the stacks that hold the memory, before the
    // evidence is gone), as a hung worker's stacks: hang_dump_grace to write it.
    Millis grace = row.generation.settings->hangDumpGrace;
    if (!row.rssKillAt && grace.count() > 0) {
      spdlog::error("worker {} (pid {}) holds {} MiB of memory, past max_rss_hard ({} MiB); asking it for its heap "
                    "profile (SIGURG), killing it in {}",
                    row.index, row.pid, rss / kMiB, limits.maxRssHard / kMiB, describeSeconds(grace));
      ::kill(row.pid, SIGURG);
      row.rssKillAt = now + grace;
      return;
    }
    if (row.rssKillAt && now < *row.rssKillAt) return;
    row.rssKillAt.reset();
    spdlog::error("worker {} (pid {}) holds {} MiB of memory, past max_rss_hard ({} MiB); killing it", row.index,
                  row.pid, rss / kMiB, limits.maxRssHard / kMiB);
    ::kill(row.pid, SIGKILL);
    count(stats::RecycleReason::kRssHard);
    transition(row, State::kKilled);
    return;
  }
  if (row.recycling || row.generation.number != current_.number) return;
  const stats::Slot& slot = segment_.slot(row.slot);
  uint64_t requests = stats::load(slot.totals.counters[stats::index(stats::Counter::kRequestsReceived)]);
  std::string why;
  if (row.maxRequests > 0 && requests >= row.maxRequests) {
    row.recycling = stats::RecycleReason::kRequests;
    why = fmt::format("{} requests read, its max_requests draw is {}", requests, row.maxRequests);
  } else if (limits.maxRss > 0 && rss >= limits.maxRss) {
    row.recycling = stats::RecycleReason::kRss;
    why = fmt::format("{} MiB resident, past max_rss ({} MiB); it writes its heap profile (SIGURG) and logs where",
                      rss / kMiB, limits.maxRss / kMiB);
    // While the memory is still held: the profile says which stacks hold it.
    ::kill(row.pid, SIGURG);
  } else if (row.retireAt && now >= *row.retireAt) {
    row.recycling = stats::RecycleReason::kLifetime;
    why = fmt::format("{} old, its max_lifetime draw is {}",
                      describeSeconds(std::chrono::duration_cast<Millis>(now - row.startedAt)),
                      describeSeconds(std::chrono::duration_cast<Millis>(*row.retireAt - row.startedAt)));
  } else {
    return;
  }
  count(*row.recycling);
  spdlog::info("recycling worker {} (pid {}, reason {}): {}; a successor starts on its sockets, then it drains",
               row.index, row.pid, stats::recycleReason(*row.recycling).name, why);
}

const Supervisor::Row* Supervisor::recyclingRow(unsigned index) const {
  for (const Row& row : rows_) {
    if (row.recycling && row.state == State::kServing && row.generation.number == current_.number &&
        row.index == index) {
      return &row;
    }
  }
  return nullptr;
}

bool Supervisor::successorServes(const Row& row) const {
  for (const Row& other : rows_) {
    if (&other != &row && !other.recycling && other.generation.number == row.generation.number &&
        other.index == row.index && other.state == State::kServing && slotSaysServing(other)) {
      return true;
    }
  }
  return false;
}

// The heartbeat cannot see a worker whose loop runs but whose listeners are
// no longer in it: a handler module's forked child that ran the worker's
// shutdown deleted them from the epoll set the two share. It beats, /healthz
// says ok and steering keeps it eligible, while the connections hashed to it
// wait until their clients give up. Every accept counts as progress: one
// refused at max_connections, and one that failed (EMFILE pauses accepting)
// too, since the loop was trying.
void Supervisor::checkAcceptProgress(Row& row, Clock::time_point now) {
  auto forget = [&] {
    row.acceptStalledSince.reset();
    row.acceptKillAt.reset();
  };
  // The worker's own word too: one told to drain by someone else stops
  // accepting on purpose.
  if (row.state != State::kServing || lifecycle_.stopping() || !slotSaysServing(row)) return forget();
  const stats::Slot& slot = segment_.slot(row.slot);
  auto counter = [&](stats::Counter c) { return stats::load(slot.totals.counters[stats::index(c)]); };
  uint64_t progress = counter(stats::Counter::kConnectionsAccepted) + counter(stats::Counter::kConnectionsRejected) +
                      counter(stats::Counter::kAcceptErrors);
  // Only the sockets of its own index and generation's addresses: a shared
  // (systemd) socket is drained by the others, a new address may await a
  // generation still starting.
  const std::vector<std::string>& addresses = row.generation.settings->listen;
  uint32_t waiting = 0;
  for (const IndexedSocket& s : listeners_.sockets()) {
    if (s.index != row.index || std::find(addresses.begin(), addresses.end(), s.address) == addresses.end()) continue;
    if (auto queue = acceptQueue(s.fd)) waiting = std::max(waiting, queue->length);
  }
  uint64_t silentMs = stats::silentForMs(slot);
  if (progress != row.acceptProgress || waiting == 0 || silentMs > kLoopRunsMs) {
    if (row.acceptKillAt) spdlog::warn("worker {} (pid {}) accepts again; not killing it", row.index, row.pid);
    row.acceptProgress = progress;
    return forget();
  }
  if (!row.acceptStalledSince) {
    row.acceptStalledSince = now;
    return;
  }
  Millis timeout = row.generation.settings->workerTimeout;
  auto stalledMs = std::chrono::duration_cast<Millis>(now - *row.acceptStalledSince).count();
  if (stalledMs < timeout.count()) return;
  std::string why = fmt::format("has accepted no connection for {} ms while {} wait on its socket (worker_timeout "
                                "{} ms), though its loop runs (heartbeat {} ms old)",
                                stalledMs, waiting, timeout.count(), silentMs);
  Millis grace = row.generation.settings->hangDumpGrace;
  if (!row.acceptKillAt && grace.count() > 0) {
    spdlog::error("worker {} (pid {}) {}; asking it for its stacks (signal {}), killing it in {}", row.index, row.pid,
                  why, kStackDumpSignalName, describeSeconds(grace));
    ::kill(row.pid, stackDumpSignal());
    row.acceptKillAt = now + grace;
    return;
  }
  if (row.acceptKillAt && now < *row.acceptKillAt) return;
  spdlog::error("worker {} (pid {}) {}; killing it", row.index, row.pid, why);
  ::kill(row.pid, SIGKILL);
  row.hangCause = "killed after it stopped accepting";
  forget();
  transition(row, State::kHung);
}

}  // namespace tcpfork
