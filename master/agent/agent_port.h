#pragma once
// AgentPort: the agent-check listener (agent.listen). Every connection gets
// one line, agentAnswer()'s, and is closed within the accept callback, so the
// port holds no descriptor between loop iterations: a flood of connects costs
// the master one accept() each, never its descriptors or memory. A burst is
// accepted kBurst at a time, the rest wait in the kernel's queue for the next
// loop iteration, so the loop's other work is never starved. accept() failing
// for want of descriptors or memory pauses the port for kPause instead of
// spinning, in a rate-limited log line. What the peer sends (HAProxy's
// `agent-send`) is read and ignored. Owned by the Master, on its loop.

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <string>

#include "base/event_ptr.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "master/agent/agent_answer.h"

namespace tcpfork {

class AgentPort {
 public:
  static constexpr int kBurst = 64;
  static constexpr auto kPause = std::chrono::milliseconds(100);

  // Binds `address`, or serves on `inherited` when valid (the socket a
  // binary upgrade hands over). Throws std::system_error naming the call.
  AgentPort(event_base* base, const std::string& address, UniqueFd inherited, std::function<AgentAnswer()> answer);
  AgentPort(const AgentPort&) = delete;
  AgentPort& operator=(const AgentPort&) = delete;

  int listenerFd() const { return listener_.get(); }
  std::string boundAddress() const;
  const AgentCounts& counts() const { return counts_; }

 private:
  static void onAccept(evutil_socket_t fd, short what, void* self);
  static void onResume(evutil_socket_t fd, short what, void* self);
  void acceptBurst();
  void answerAndClose(UniqueFd connection);

  UniqueFd listener_;
  std::function<AgentAnswer()> answer_;
  EventPtr acceptEvent_;
  EventPtr resume_;
  AgentCounts counts_{};
  uint64_t acceptErrors_ = 0;
  RateLimitedLog log_{1};
};

}  // namespace tcpfork
