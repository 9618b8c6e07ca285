#include "worker/completions.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace tcpfork {

Completions::Completions(event_base* base, Deliver deliver, Delivered delivered)
    : deliver_(std::move(deliver)), delivered_(std::move(delivered)), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!wake_) throw std::system_error(errno, std::generic_category(), "eventfd(completions)");
  event_.reset(event_new(base, wake_.get(), EV_READ | EV_PERSIST, &Completions::onWake, this));
  if (!event_ || event_add(event_.get(), nullptr) != 0) {
    throw std::system_error(ENOMEM, std::generic_category(), "event_new(completions)");
  }
}

void Completions::push(uint64_t token, uint8_t result) {
  bool wake;
  {
    std::lock_guard lock(mutex_);
    wake = queue_.empty();
    queue_.emplace_back(token, result);
  }
  if (!wake) return;
  uint64_t one = 1;
  // Fails only when the counter would overflow, and then the loop is awake anyway.
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
}

void Completions::onWake(evutil_socket_t fd, short, void* self) {
  auto* completions = static_cast<Completions*>(self);
  uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
  {
    std::lock_guard lock(completions->mutex_);
    completions->taken_.swap(completions->queue_);
  }
  for (auto [token, result] : completions->taken_) completions->deliver_(token, result);
  completions->taken_.clear();
  completions->delivered_();
}

}  // namespace tcpfork
