#include "worker/socket_events.h"

#include <cerrno>
#include <system_error>

namespace tcpfork {
namespace {

void add(event* ev, const timeval* timeout) {
  if (event_add(ev, timeout) != 0) throw std::system_error(ENOMEM, std::generic_category(), "event_add(connection)");
}

}  // namespace

SocketEvents::SocketEvents(event_base* base, int fd, event_callback_fn onRead, event_callback_fn onWrite, void* owner)
    : read_(event_new(base, fd, EV_READ | EV_PERSIST, onRead, owner)),
      write_(event_new(base, fd, EV_WRITE | EV_PERSIST, onWrite, owner)) {
  if (!read_ || !write_) throw std::system_error(ENOMEM, std::generic_category(), "allocating connection events");
}

void SocketEvents::read(const timeval* timeout) {
  add(read_.get(), timeout);
  reading_ = true;
}

void SocketEvents::read(std::chrono::milliseconds timeout) {
  timeval tv = toTimeval(timeout);
  read(timeout.count() > 0 ? &tv : nullptr);
}

void SocketEvents::stopReading() {
  if (!reading_) return;
  event_del(read_.get());
  reading_ = false;
}

void SocketEvents::write(const timeval* timeout) {
  add(write_.get(), timeout);
  writing_ = true;
}

void SocketEvents::stopWriting() {
  if (!writing_) return;
  event_del(write_.get());
  writing_ = false;
}

void SocketEvents::disarm() {
  event_del(read_.get());
  event_del(write_.get());
  reading_ = false;
  writing_ = false;
}

}  // namespace tcpfork
