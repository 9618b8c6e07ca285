#pragma once
// NextPass: runs a callback on the loop's next pass, after every connection
// ready now and the worker's timers (a zero timeout). A connection that has
// spent its time slice resumes through it. The event is made the first time
// it is scheduled: most connections never yield.

#include <event2/event.h>

#include "base/event_ptr.h"

namespace tcpfork {

class NextPass {
 public:
  // False when there is no memory for the event.
  [[nodiscard]] bool schedule(event_base* base, event_callback_fn fn, void* owner) {
    static constexpr timeval kNow{0, 0};
    if (!event_) event_.reset(evtimer_new(base, fn, owner));
    return event_ && evtimer_add(event_.get(), &kNow) == 0;
  }
  void cancel() {
    if (event_) event_del(event_.get());
  }

 private:
  EventPtr event_;
};

}  // namespace tcpfork
