#pragma once
// ConnectionDeadline: a connection's one timer for the two waits that reads
// alone cannot end. A frame begun and not finished is bounded by
// idle_timeout (FrameInput::deadline: a 1-byte drip resets the idle timer
// with every byte). Pending requests of which none completes are bounded by
// handler.pending_timeout, counted from the first deferral or the last run
// of completions (reading may be paused, so neither silence nor a peer's
// close is ever seen). The timer fires at the earlier end; its owner asks
// which wait ran out and arms it again.
//
// The connection passes what every connection of a worker shares (the loop,
// the bound, itself as the callback's argument) on each call instead of
// this holding it: a connection's size is the server's memory per idle
// connection. The event is made the first time a wait needs it.

#include <event2/event.h>

#include <chrono>
#include <cstddef>
#include <optional>

#include "base/event_ptr.h"

namespace tcpfork {

class ConnectionDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  struct Timer {
    event_base* base;
    event_callback_fn fired;
    void* owner;
  };

  // Arms for the earlier of `frameEnd` and the pending wait's end (none:
  // nothing to wait for). One armed for sooner stays: it fires, finds the
  // wait moved on, and the owner arms again. False when there is no memory
  // for the timer: nothing would bound the waits, so the owner closes.
  [[nodiscard]] bool arm(std::optional<Clock::time_point> frameEnd, std::chrono::milliseconds pendingTimeout,
                         const Timer& timer);
  // The timer fired: nothing is armed now.
  void fired() { armedAt_.reset(); }
  void disarm();

  // A request was deferred: true when the pending wait begins now (arm then).
  bool pendingBegan(std::chrono::milliseconds pendingTimeout);
  // A run of completions: the bound counts from now, or ends with the last
  // pending request.
  void pendingProgress(bool stillPending);
  bool pendingExpired(Clock::time_point now, std::chrono::milliseconds pendingTimeout) const {
    return pendingSince_ && now - *pendingSince_ >= pendingTimeout;
  }

 private:
  EventPtr event_;
  std::optional<Clock::time_point> armedAt_;  // while armed
  // Since the last completion of one of its pending requests (or the first
  // deferral), while it has any and pending_timeout is set.
  std::optional<Clock::time_point> pendingSince_;
};

}  // namespace tcpfork
