#include "master/binary_upgrade.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <system_error>

#include "master/supervise/supervisor.h"

namespace tcpfork {

BinaryUpgrade::BinaryUpgrade(event_base* base, Callbacks callbacks) : base_(base), callbacks_(std::move(callbacks)) {}

BinaryUpgrade::~BinaryUpgrade() = default;

void BinaryUpgrade::start(SpawnRequest request, std::chrono::milliseconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::system_error(errno, std::generic_category(), "pipe2()");
  UniqueFd readEnd(fds[0]);
  UniqueFd writeEnd(fds[1]);
  request.inheritFds.push_back(writeEnd.get());
  request.env.push_back(fmt::format("{}={}", kFromEnv, ::getpid()));
  request.env.push_back(fmt::format("{}={}", kReadyFdEnv, writeEnd.get()));
  // The new master must outlive this one.
  request.dieWithParent = false;
  pid_t pid = spawnProcess(request);
  EventPtr event(event_new(base_, readEnd.get(), EV_READ | EV_PERSIST, &BinaryUpgrade::onReadable, this));
  if (!event || event_add(event.get(), nullptr) != 0) {
    // It cannot tell us it is ready; it will find the pipe closed when it tries.
    throw std::system_error(ENOMEM, std::generic_category(), "event_new(upgrade pipe)");
  }
  pid_ = pid;
  ready_ = false;
  message_.clear();
  pipe_ = std::move(readEnd);
  pipeEvent_ = std::move(event);
  timeout_ = timeout;
  timer_.reset(evtimer_new(base_, &BinaryUpgrade::onTimeout, this));
  timeval tv = toTimeval(timeout);
  if (timer_) evtimer_add(timer_.get(), &tv);
}

void BinaryUpgrade::onTimeout(evutil_socket_t, short, void* self) {
  auto* upgrade = static_cast<BinaryUpgrade*>(self);
  if (upgrade->pid_ > 0 && !upgrade->ready_) {
    upgrade->fail(fmt::format("the new master (pid {}) did not serve within {} ms", upgrade->pid_,
                              upgrade->timeout_.count()));
  }
}

void BinaryUpgrade::onReadable(evutil_socket_t fd, short, void* self) {
  auto* upgrade = static_cast<BinaryUpgrade*>(self);
  char buffer[512];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) upgrade->message_.append(buffer, size_t(n));
  bool saidReady = upgrade->message_.starts_with("READY\n");
  if (saidReady && !upgrade->ready_) {
    upgrade->ready_ = true;
    upgrade->timer_.reset();
    upgrade->callbacks_.ready(upgrade->pid_);
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  // EOF: the new master closed its end, after READY or instead of it.
  upgrade->pipeEvent_.reset();
  upgrade->pipe_.reset();
  if (saidReady) return;
  upgrade->fail(upgrade->message_.empty() ? "the new master closed its readiness pipe without a word"
                                          : upgrade->message_);
}

bool BinaryUpgrade::onChildExit(pid_t pid, int status) {
  if (pid > 0 && pid == killed_) {
    killed_ = 0;
    return true;
  }
  if (pid_ <= 0 || pid != pid_) return false;
  pid_ = 0;  // reaped: nothing left to kill
  fail(ready_ ? fmt::format("the new master (pid {}) exited after it served: {}", pid, describeExit(status))
              : fmt::format("the new master (pid {}) exited before it served: {}{}", pid, describeExit(status),
                            message_.empty() ? "" : " (" + message_ + ")"));
  return true;
}

void BinaryUpgrade::fail(const std::string& why) {
  // A new master that gave up but still runs has no business serving; its
  // exit is still ours to recognise when the master reaps it.
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    killed_ = pid_;
  }
  pid_ = 0;
  ready_ = false;
  pipeEvent_.reset();
  pipe_.reset();
  timer_.reset();
  message_.clear();
  callbacks_.failed(why);
}

}  // namespace tcpfork
