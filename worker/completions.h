#pragma once
// Completions: results of pending requests, handed in from any thread and
// delivered on the worker's loop. A mutex-guarded queue and an eventfd the
// loop watches; the eventfd is written only when the queue was empty, so a
// burst of completions costs one wake-up.

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "base/event_ptr.h"
#include "base/unique_fd.h"

namespace tcpfork {

class Completions {
 public:
  using Deliver = std::function<void(uint64_t token, uint8_t result)>;
  using Delivered = std::function<void()>;

  // `delivered` runs after each run of deliveries, so that what they touched
  // is flushed once per run rather than once per completion. Throws
  // std::system_error when the eventfd or its event cannot be made.
  Completions(event_base* base, Deliver deliver, Delivered delivered);
  Completions(const Completions&) = delete;
  Completions& operator=(const Completions&) = delete;

  // Any thread. Delivered on the loop, in the order pushed.
  void push(uint64_t token, uint8_t result);

 private:
  static void onWake(evutil_socket_t fd, short what, void* self);

  Deliver deliver_;
  Delivered delivered_;
  UniqueFd wake_;
  EventPtr event_;
  std::mutex mutex_;
  std::vector<std::pair<uint64_t, uint8_t>> queue_;  // guarded by mutex_
  std::vector<std::pair<uint64_t, uint8_t>> taken_;  // loop only: swapped with queue_
};

}  // namespace tcpfork
