#include "worker/quit_signal.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>

namespace tcpfork {
namespace {

// What the handler may touch: the eventfd to write, and the one fact it notes.
std::atomic<int> gWakeFd{-1};
std::atomic<bool> gFromItself{false};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

void onQuitSignal(int, siginfo_t* info, void*) {
  int saved = errno;
  // kill(getpid()) and raise() alike: a sender of ours (any thread of this
  // process has its pid). The kernel fills si_pid; no other process can
  // claim ours with kill(2).
  bool user = info->si_code == SI_USER || info->si_code == SI_TKILL || info->si_code == SI_QUEUE;
  if (user && info->si_pid == ::getpid()) gFromItself.store(true);
  uint64_t one = 1;
  int fd = gWakeFd.load(std::memory_order_relaxed);
  if (fd >= 0) (void)!::write(fd, &one, sizeof one);
  errno = saved;
}

}  // namespace

QuitSignal::QuitSignal(event_base* base, OnQuit onQuit)
    : onQuit_(std::move(onQuit)), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!wake_) throw std::system_error(errno, std::generic_category(), "eventfd(SIGQUIT)");
  event_.reset(event_new(base, wake_.get(), EV_READ | EV_PERSIST, &QuitSignal::onWake, this));
  if (!event_ || event_add(event_.get(), nullptr) != 0) {
    throw std::system_error(ENOMEM, std::generic_category(), "event_new(SIGQUIT)");
  }
  gFromItself.store(false);
  gWakeFd.store(wake_.get());
  struct sigaction action {};
  action.sa_sigaction = onQuitSignal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (::sigaction(SIGQUIT, &action, nullptr) != 0) {
    gWakeFd.store(-1);
    throw std::system_error(errno, std::generic_category(), "sigaction(SIGQUIT)");
  }
}

QuitSignal::~QuitSignal() {
  // The worker is stopping already: a late SIGQUIT must not dump core.
  ::signal(SIGQUIT, SIG_IGN);
  gWakeFd.store(-1);
}

void QuitSignal::onWake(evutil_socket_t fd, short, void* self) {
  uint64_t count = 0;
  (void)!::read(fd, &count, sizeof count);
  auto* quit = static_cast<QuitSignal*>(self);
  quit->onQuit_(gFromItself.load());
}

}  // namespace tcpfork
