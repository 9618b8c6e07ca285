#include "master/supervise/connection_steering.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/socket.h"
#include "stats/heartbeat.h"

namespace tcpfork {

ConnectionSteering::ConnectionSteering(const SteeringConfig& config, unsigned maxWorkers, Listeners& listeners)
    : config_(config), listeners_(listeners), program_(maxWorkers) {
  listeners_.onDrop([this](const IndexedSocket& socket) {
    if (!program_.active()) return;
    program_.retire(socket.address, socket.index);
    ++excludedRetiring_;
  });
}

void ConnectionSteering::configure(const SteeringConfig& config) { config_ = config; }

void ConnectionSteering::tick(const Supervisor& supervisor, const stats::StatsSegment& segment,
                              uint64_t maxConnections) {
  if (!announced_) {
    announced_ = true;
    if (!config_.enabled) {
      spdlog::info("steering: off (steering.enabled is false): new connections go by SO_REUSEPORT's hash");
    } else if (!program_.available()) {
      spdlog::warn("steering: off: {}; new connections go by SO_REUSEPORT's hash", program_.unavailableReason());
    } else if (listeners_.socketActivated() && listeners_.sockets().empty()) {
      spdlog::warn("steering: off: the workers share the sockets systemd passed (see the warning above)");
    }
  }
  if (!config_.enabled || !program_.available()) return;
  auto now = RateLimitedLog::Clock::now();
  for (RateLimitedLog* log : {&outLog_, &backLog_, &everyoneOutLog_}) log->flush(now);

  std::vector<IndexedSocket> sockets = listeners_.sockets();
  std::vector<steering::SteeredSocket> steered;
  unsigned indices = 0;
  for (const IndexedSocket& s : sockets) {
    steered.push_back({s.address, s.index, s.fd});
    indices = std::max(indices, s.index + 1);
  }
  program_.sync(steered);
  if (!program_.active()) return;
  if (!announcedOn_) {
    announcedOn_ = true;
    spdlog::info("steering: on: new connections go to workers whose heartbeat is under {} ms old and whose "
                 "accept queue is at most {}, and not to an overloaded one while another is not",
                 config_.staleAfter.count(), config_.maxQueue);
  }

  std::vector<steering::WorkerView> views(indices);
  for (unsigned i = 0; i < indices; ++i) {
    steering::WorkerView& v = views[i];
    v.index = i;
    uint64_t freshest = UINT64_MAX;
    bool roomy = false;     // one of its serving workers can take a connection more
    bool unloaded = false;  // one of them is not shedding
    for (uint32_t slot : supervisor.servingSlots(i)) {
      freshest = std::min(freshest, stats::silentForMs(segment.slot(slot)));
      roomy = roomy || stats::load(segment.slot(slot).connectionsCurrent) < maxConnections;
      unloaded = unloaded || stats::load(segment.slot(slot).overloaded) == 0;
    }
    v.serving = freshest != UINT64_MAX;
    v.full = v.serving && !roomy;
    v.overloaded = v.serving && !unloaded;
    v.heartbeatAgeMs = v.serving ? freshest : 0;
  }
  for (const IndexedSocket& s : sockets) {
    if (auto queue = acceptQueue(s.fd)) views[s.index].acceptQueue = std::max(views[s.index].acceptQueue, queue->length);
  }
  steering::Decision decision =
      steering::decide(views, {uint64_t(config_.staleAfter.count()), config_.maxQueue}, last_.why);
  logChanges(views, decision, maxConnections);
  program_.publish(decision.eligible);
  views_ = std::move(views);
  last_ = std::move(decision);
}

void ConnectionSteering::logChanges(const std::vector<steering::WorkerView>& views, const steering::Decision& decision,
                                    uint64_t maxConnections) {
  using steering::Exclusion;
  for (size_t i = 0; i < views.size(); ++i) {
    Exclusion was = i < last_.why.size() ? last_.why[i] : Exclusion::kNotServing;
    Exclusion now = decision.why[i];
    if (now == was) continue;
    if (now == Exclusion::kStale) {
      ++excludedStale_;
      outLog_.warn("steering: worker {} out of rotation: its heartbeat is {} ms old (stale_after {} ms)", i,
                   views[i].heartbeatAgeMs, config_.staleAfter.count());
    } else if (now == Exclusion::kQueue) {
      ++excludedQueue_;
      outLog_.warn("steering: worker {} out of rotation: {} connections wait in its accept queue (max_queue {})", i,
                   views[i].acceptQueue, config_.maxQueue);
    } else if (now == Exclusion::kFull) {
      ++excludedFull_;
      outLog_.warn("steering: worker {} out of rotation: it holds max_connections ({}) already", i, maxConnections);
    } else if (now == Exclusion::kOverloaded) {
      ++excludedOverloaded_;
      outLog_.warn("steering: worker {} out of rotation: it is overloaded (shedding by queueing delay, "
                   "overload.target); workers that are not take new connections",
                   i);
    } else if (now == Exclusion::kNone && was != Exclusion::kNone && was != Exclusion::kNotServing) {
      backLog_.info("steering: worker {} back in rotation", i);
    }
  }
  // Everyone out while nothing serves yet (a start, a full restart) is no news.
  bool anyServing = std::any_of(views.begin(), views.end(), [](const auto& v) { return v.serving; });
  bool everyoneOut = decision.everyoneOut && anyServing;
  if (everyoneOut && !wasEveryoneOut_) {
    everyoneOutLog_.warn("steering: no worker qualifies; every serving worker takes its hash share until one does");
  }
  wasEveryoneOut_ = everyoneOut;
}

void ConnectionSteering::handOver() {
  if (!program_.active()) return;
  program_.release();
  spdlog::info("steering: handed over to the new master");
}

steering::Status ConnectionSteering::status() const {
  steering::Status s;
  s.active = config_.enabled && program_.active();
  if (s.active) {
    for (size_t i = 0; i < views_.size(); ++i) {
      bool in = std::find(last_.eligible.begin(), last_.eligible.end(), views_[i].index) != last_.eligible.end();
      s.eligible.emplace_back(views_[i].index, in);
    }
    s.program = program_.stats();
  }
  s.excludedStale = excludedStale_;
  s.excludedQueue = excludedQueue_;
  s.excludedFull = excludedFull_;
  s.excludedOverloaded = excludedOverloaded_;
  s.excludedRetiring = excludedRetiring_;
  return s;
}

}  // namespace tcpfork
