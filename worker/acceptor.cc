#include "worker/acceptor.h"

#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>

namespace tcpfork {
namespace {

// Bounded so a connect storm cannot starve established connections.
constexpr int kAcceptsPerWakeup = 64;
constexpr timeval kResumeAfterExhaustion{0, 100'000};

}  // namespace

Acceptor::Acceptor(event_base* base, int listenFd, stats::Slot* stats, NewConnection onConnection)
    : listenFd_(listenFd),
      stats_(stats),
      onConnection_(std::move(onConnection)),
      acceptEvent_(event_new(base, listenFd, EV_READ | EV_PERSIST, &Acceptor::onReadable, this)),
      resumeTimer_(evtimer_new(base, &Acceptor::onResume, this)) {
  if (!acceptEvent_ || !resumeTimer_) throw std::system_error(ENOMEM, std::generic_category(), "event_new(acceptor)");
}

void Acceptor::enable() {
  if (event_add(acceptEvent_.get(), nullptr) != 0) {
    throw std::system_error(errno, std::generic_category(), "event_add(listener)");
  }
  enabled_ = true;
}

void Acceptor::disable() {
  event_del(acceptEvent_.get());
  event_del(resumeTimer_.get());
  enabled_ = false;
}

void Acceptor::onReadable(evutil_socket_t, short, void* self) {
  static_cast<Acceptor*>(self)->acceptSome(kAcceptsPerWakeup);
}

void Acceptor::acceptQueued() {
  enabled_ = true;
  acceptSome(INT_MAX);
  disable();
}

void Acceptor::onResume(evutil_socket_t, short, void* self) {
  auto* acceptor = static_cast<Acceptor*>(self);
  if (acceptor->enabled_) event_add(acceptor->acceptEvent_.get(), nullptr);
}

void Acceptor::acceptSome(int limit) {
  for (int i = 0; i < limit && enabled_; ++i) {
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      onConnection_(UniqueFd(fd));
      continue;
    }
    switch (errno) {
      case EAGAIN:
#if EAGAIN != EWOULDBLOCK
      case EWOULDBLOCK:
#endif
        return;
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        count(stats_, stats::Counter::kAcceptErrors, 1);
        errorLog_.warn("accept4(): {}; pausing accepts for 100 ms", std::strerror(errno));
        event_del(acceptEvent_.get());
        evtimer_add(resumeTimer_.get(), &kResumeAfterExhaustion);
        return;
      default:
        count(stats_, stats::Counter::kAcceptErrors, 1);
        errorLog_.warn("accept4(): {}", std::strerror(errno));
        return;
    }
  }
}

}  // namespace tcpfork
