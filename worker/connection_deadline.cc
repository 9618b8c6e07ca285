#include "worker/connection_deadline.h"

namespace tcpfork {

bool ConnectionDeadline::arm(std::optional<Clock::time_point> frameEnd, std::chrono::milliseconds pendingTimeout,
                             const Timer& timer) {
  std::optional<Clock::time_point> at = frameEnd;
  if (pendingSince_ && (!at || *pendingSince_ + pendingTimeout < *at)) at = *pendingSince_ + pendingTimeout;
  if (!at || (armedAt_ && *armedAt_ <= *at)) return true;
  if (!event_) event_.reset(evtimer_new(timer.base, timer.fired, timer.owner));
  auto wait = std::chrono::duration_cast<std::chrono::microseconds>(*at - Clock::now());
  timeval tv{0, 0};
  if (wait.count() > 0) tv = {time_t(wait.count() / 1'000'000), suseconds_t(wait.count() % 1'000'000)};
  if (!event_ || evtimer_add(event_.get(), &tv) != 0) return false;
  armedAt_ = at;
  return true;
}

void ConnectionDeadline::disarm() {
  if (event_) event_del(event_.get());
  armedAt_.reset();
}

bool ConnectionDeadline::pendingBegan(std::chrono::milliseconds pendingTimeout) {
  if (pendingSince_ || pendingTimeout.count() == 0) return false;
  pendingSince_ = Clock::now();
  return true;
}

void ConnectionDeadline::pendingProgress(bool stillPending) {
  if (!pendingSince_) return;
  if (stillPending) {
    pendingSince_ = Clock::now();
  } else {
    pendingSince_.reset();
  }
}

}  // namespace tcpfork
