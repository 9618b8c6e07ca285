#include "base/rx_timestamp.h"

#include <sys/socket.h>
#include <time.h>

#include <cstring>

namespace tcpfork {

bool enableReceiveTimestamps(int fd) {
  int on = 1;
  return ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0;
}

ssize_t readTimestamped(int fd, std::span<std::byte> into, uint64_t& rxRealtimeNs) {
  iovec iov{into.data(), into.size()};
  // Room for one SCM_TIMESTAMPNS and nothing else: TCP sends no other
  // control message unless asked (a truncated one sets MSG_CTRUNC and is ignored).
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd, &msg, 0);
  rxRealtimeNs = 0;
  if (n <= 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(timespec))) {
      timespec ts;
      std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
      rxRealtimeNs = uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
    }
  }
  return n;
}

uint64_t realtimeNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

}  // namespace tcpfork
