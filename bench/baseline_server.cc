// tcpfork-baseline: a deliberately bare ack server to measure tcpfork against.
// One epoll loop, level-triggered, one flat buffer each way per connection, the
// same codec; no libevent, no stats, no limits beyond a fixed frame size. It
// shows what the kernel and the codec cost by themselves, so `make bench` can
// report how much the real worker adds. Not for production use.

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/socket.h"
#include "protocol/codec.h"

using namespace tcpfork;
using namespace tcpfork::protocol;

namespace {

constexpr size_t kBufferBytes = 64 * 1024;

struct Conn {
  UniqueFd fd;
  std::vector<std::byte> in = std::vector<std::byte>(kBufferBytes);
  size_t inLength = 0;
  std::vector<std::byte> out;
  size_t outBegin = 0;
  bool pollingOut = false;
};

// Returns false when the connection should be closed.
bool serve(Conn& c) {
  ssize_t n = ::read(c.fd.get(), c.in.data() + c.inLength, c.in.size() - c.inLength);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  c.inLength += static_cast<size_t>(n);
  size_t offset = 0;
  for (;;) {
    auto d = decodeRequest(std::span<const std::byte>(c.in.data() + offset, c.inLength - offset), kBufferBytes);
    if (d.status == DecodeStatus::kError) return false;
    if (d.status == DecodeStatus::kNeedMore) break;
    size_t at = c.out.size();
    c.out.resize(at + kAckFrameBytes);
    encodeAck(ackFor(d.message.command), d.message.id, kResultOk, c.out.data() + at);
    offset += d.size;
  }
  std::memmove(c.in.data(), c.in.data() + offset, c.inLength - offset);
  c.inLength -= offset;
  while (c.outBegin < c.out.size()) {
    ssize_t w = ::send(c.fd.get(), c.out.data() + c.outBegin, c.out.size() - c.outBegin, MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN || errno == EINTR;
    c.outBegin += static_cast<size_t>(w);
  }
  c.out.clear();
  c.outBegin = 0;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::strcmp(argv[1], "--listen") != 0) {
    fmt::print(stderr, "usage: tcpfork-baseline --listen ADDR:PORT\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  try {
    UniqueFd listener = listenTcp(parseAddress(argv[2]));
    UniqueFd epoll(epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{EPOLLIN, {.ptr = nullptr}};
    epoll_ctl(epoll.get(), EPOLL_CTL_ADD, listener.get(), &ev);
    fmt::print(stderr, "tcpfork-baseline: serving on {}\n", localAddress(listener.get()).toString());
    std::unordered_map<int, std::unique_ptr<Conn>> conns;
    epoll_event events[256];
    for (;;) {
      int ready = epoll_wait(epoll.get(), events, 256, -1);
      for (int i = 0; i < ready; ++i) {
        auto* c = static_cast<Conn*>(events[i].data.ptr);
        if (c == nullptr) {
          int fd;
          while ((fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            auto conn = std::make_unique<Conn>();
            conn->fd.reset(fd);
            epoll_event cev{EPOLLIN, {.ptr = conn.get()}};
            epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &cev);
            conns[fd] = std::move(conn);
          }
          continue;
        }
        if (!serve(*c)) {
          conns.erase(c->fd.get());
          continue;
        }
        bool wantOut = c->outBegin < c->out.size();
        if (wantOut != c->pollingOut) {
          c->pollingOut = wantOut;
          epoll_event cev{wantOut ? uint32_t(EPOLLIN | EPOLLOUT) : uint32_t(EPOLLIN), {.ptr = c}};
          epoll_ctl(epoll.get(), EPOLL_CTL_MOD, c->fd.get(), &cev);
        }
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcpfork-baseline: {}\n", e.what());
    return 1;
  }
}
