#include "master/agent/agent_port.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "base/socket.h"

namespace tcpfork {
namespace {

// A balancer checks every second or so; a queue this long absorbs a burst of
// checks from many balancers between two loop iterations.
constexpr int kBacklog = 128;

UniqueFd bindAgent(const std::string& address, UniqueFd inherited) {
  if (inherited.get() >= 0) {
    setNonBlocking(inherited.get());
    return inherited;
  }
  // No SO_REUSEPORT: a second master on the same address fails at bind
  // instead of answering for a host it does not run.
  return listenTcp(parseAddress(address), ListenOptions{kBacklog, false});
}

}  // namespace

AgentPort::AgentPort(event_base* base, const std::string& address, UniqueFd inherited,
                     std::function<AgentAnswer()> answer)
    : listener_(bindAgent(address, std::move(inherited))),
      answer_(std::move(answer)),
      acceptEvent_(event_new(base, listener_.get(), EV_READ | EV_PERSIST, &AgentPort::onAccept, this)),
      resume_(evtimer_new(base, &AgentPort::onResume, this)) {
  if (!acceptEvent_ || !resume_) throw std::system_error(ENOMEM, std::generic_category(), "event_new(agent)");
  if (event_add(acceptEvent_.get(), nullptr) != 0) {
    throw std::system_error(EINVAL, std::generic_category(), "event_add(agent listener)");
  }
}

std::string AgentPort::boundAddress() const { return localAddress(listener_.get()).toString(); }

void AgentPort::onAccept(evutil_socket_t, short, void* self) { static_cast<AgentPort*>(self)->acceptBurst(); }

void AgentPort::onResume(evutil_socket_t, short, void* self) {
  auto* port = static_cast<AgentPort*>(self);
  event_add(port->acceptEvent_.get(), nullptr);
}

void AgentPort::acceptBurst() {
  for (int i = 0; i < kBurst; ++i) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      answerAndClose(UniqueFd(fd));
      continue;
    }
    int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) return;
    if (error == EINTR || error == ECONNABORTED || error == EPROTO) continue;
    ++acceptErrors_;
    log_.warn("agent check: accept() on {}: {} ({} accept errors so far); pausing the agent port for {} ms",
              boundAddress(), std::strerror(error), acceptErrors_, kPause.count());
    event_del(acceptEvent_.get());
    timeval tv = toTimeval(kPause);
    evtimer_add(resume_.get(), &tv);
    return;
  }
}

void AgentPort::answerAndClose(UniqueFd connection) {
  AgentAnswer a = answer_();
  // A fresh socket's send buffer holds a line many times over: this never
  // blocks, and a peer that does not read costs nothing once we close.
  ssize_t sent = ::send(connection.get(), a.line.data(), a.line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent == ssize_t(a.line.size())) ++counts_[size_t(a.kind)];
  // Unread input makes close() send a reset, which can destroy the line
  // before the peer reads it: take what has arrived (agent-send) first.
  char discard[512];
  for (int i = 0; i < 4 && ::recv(connection.get(), discard, sizeof discard, MSG_DONTWAIT) > 0; ++i) {
  }
  ::shutdown(connection.get(), SHUT_WR);
}

}  // namespace tcpfork
