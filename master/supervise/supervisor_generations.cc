// The Supervisor's generations: a reload starts the next one beside the
// current, then finishes (the new one serves; the old one drains) or is
// abandoned (the new one did not serve within worker_timeout); TTIN and TTOU
// change the current one's size. Each only changes what is wanted and then
// runs reconcile(), which starts and retires the processes (as it does at
// every tick).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <signal.h>

#include "master/supervise/supervisor.h"
#include "stats/slot_allocator.h"

namespace tcpfork {

bool Supervisor::reload(const GenerationSettings& settings, std::string& why) {
  if (lifecycle_.stopping()) {
    why = "shutting down";
    return false;
  }
  if (previous_) {
    why = fmt::format("generation {} is still starting", current_.number);
    return false;
  }
  if (slots_.freeCount() < settings.count) {
    why = fmt::format("the stats segment has {} free slots and the new generation needs {}: wait until the "
                      "draining workers exit (at most drain_timeout) or raise max_workers",
                      slots_.freeCount(), settings.count);
    return false;
  }
  try {
    for (unsigned i = 0; i < settings.count; ++i) listeners_.ensure(i, settings.listen);
  } catch (const std::exception& e) {
    listeners_.keepOnly(count(), current_.settings->listen);
    why = e.what();
    return false;
  }
  previous_ = current_;
  switchDeadline_ = Clock::now() + settings.workerTimeout;
  current_ = {current_.number + 1, std::make_shared<const GenerationSettings>(settings)};
  storeGeneration();
  spdlog::info("reload: generation {} starting ({} workers); generation {} serves until it is ready", current_.number,
               count(), previous_->number);
  reconcile();
  return true;
}

void Supervisor::finishSwitch() {
  listeners_.keepOnly(count(), current_.settings->listen);
  previous_.reset();
  stats::addToHeader(segment_.header(), &stats::Header::reloads);
  spdlog::info("reload: generation {} serving; generation {} draining", current_.number, current_.number - 1);
}

std::string Supervisor::notServingReasons() const {
  std::string out;
  for (unsigned i = 0; i < count(); ++i) {
    if (servingRow(i)) continue;
    const Row* row = currentRow(i);
    std::string why;
    if (row && live(*row)) {
      why = fmt::format("pid {} started, not serving yet", row->pid);
      if (!row->lastFailure.empty()) why += fmt::format(" (before: {})", row->lastFailure);
    } else {
      why = !row || row->lastFailure.empty() ? "not started" : row->lastFailure;
    }
    out += fmt::format("{}worker {}: {}", out.empty() ? "" : "; ", i, why);
  }
  return out;
}

// The new generation goes; the previous one is current again. Its workers
// that died meanwhile were not restarted during the switch: reconcile starts
// them at once.
void Supervisor::abandonSwitch(const std::string& why) {
  spdlog::error("reload failed: {}: {}; generation {} keeps serving", why, notServingReasons(), previous_->number);
  ++reloadsFailed_;
  listeners_.keepOnly(previous_->settings->count, previous_->settings->listen);
  for (Row& row : rows_) {
    if (row.generation.number != current_.number) continue;
    // New workers that already serve may owe acks: reconcile lets them drain.
    if (row.state == State::kStarting || row.state == State::kHung) {
      ::kill(row.pid, SIGKILL);
      transition(row, State::kKilled);
    } else if (row.state == State::kBackoff || row.state == State::kFatal) {
      transition(row, State::kGone);
    }
  }
  current_ = *previous_;
  previous_.reset();
  storeGeneration();
}

void Supervisor::scale(int delta) {
  if (lifecycle_.stopping() || previous_) {
    spdlog::warn("not scaling while {}", lifecycle_.stopping() ? "shutting down" : "a reload is in progress");
    return;
  }
  auto settings = std::make_shared<GenerationSettings>(*current_.settings);
  if (delta > 0) {
    if (count() >= maxWorkers()) {
      spdlog::warn("TTIN: already at max_workers ({})", maxWorkers());
      return;
    }
    try {
      listeners_.ensure(count(), settings->listen);
    } catch (const std::exception& e) {
      spdlog::error("TTIN: cannot add a listener: {}", e.what());
      return;
    }
    ++settings->count;
  } else {
    if (count() <= 1) {
      spdlog::warn("TTOU: keeping the last worker");
      return;
    }
    --settings->count;
    // Drop our copy of its listeners first: the worker takes what is queued
    // on them, and its close is then the last one.
    listeners_.keepOnly(settings->count, settings->listen);
  }
  current_.settings = std::move(settings);
  reconcile();
  spdlog::info("{}: now {} workers", delta > 0 ? "TTIN" : "TTOU", count());
}

}  // namespace tcpfork
