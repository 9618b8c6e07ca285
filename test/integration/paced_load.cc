#include "test/integration/paced_load.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>

#include "base/socket.h"
#include "base/unique_fd.h"
#include "protocol/codec.h"
#include "test/integration/process.h"

namespace tcpfork::test {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kBurstEvery = std::chrono::milliseconds(5);

uint64_t nanosSince(Clock::time_point from, Clock::time_point to) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

}  // namespace

struct PacedLoad::Connection {
  int port;
  double rate;  // requests/s on this connection
  std::chrono::milliseconds duration;
  std::chrono::milliseconds drain{0};
  std::string payload;
  uint64_t firstId;
  PacedLoadResult result;

  void run(Clock::time_point start);
};

void PacedLoad::Connection::run(Clock::time_point start) {
  // An open-loop sender times each request from its scheduled send, so a
  // sender kept from its CPU reads as server delay: as root it takes
  // priority over CPU hogs beside the test, as the worker under test does
  // (overload_test.cc, givePriority). Unprivileged, it runs as it is.
  (void)::setpriority(PRIO_PROCESS, id_t(::gettid()), -15);
  UniqueFd fd;
  try {
    fd = connectTcp(parseAddress("127.0.0.1:" + std::to_string(port)));
  } catch (const std::exception& e) {
    result.problem = std::string("connect: ") + e.what();
    return;
  }
  std::vector<Clock::time_point> scheduled;  // by request number - firstId
  std::vector<std::byte> out;
  size_t outSent = 0;
  std::vector<std::byte> in;
  uint64_t nextAcked = 0;
  Clock::time_point end = start + duration;
  Clock::time_point nextBurst = start;
  double due = 0;  // requests the schedule owes so far
  auto fail = [&](const std::string& why) {
    if (result.problem.empty()) result.problem = why;
  };
  for (;;) {
    Clock::time_point now = Clock::now();
    // Every burst due by now, each on its own schedule, as an open-loop client.
    while (nextBurst <= now && nextBurst < end) {
      due += rate * std::chrono::duration<double>(kBurstEvery).count();
      while (double(scheduled.size()) + 1 <= due) {
        uint64_t n = firstId + scheduled.size();
        std::vector<std::byte> frame = submitFrame(n, payload);
        out.insert(out.end(), frame.begin(), frame.end());
        scheduled.push_back(nextBurst);
      }
      nextBurst += kBurstEvery;
    }
    bool sending = nextBurst < end;
    if (!sending && nextAcked == scheduled.size()) break;
    if (!sending && now > end + drain) {
      result.missing = scheduled.size() - nextAcked;
      fail(fmt::format("{} requests unacked {} ms after the last send", result.missing, drain.count()));
      break;
    }
    pollfd p{fd.get(), short(POLLIN | (outSent < out.size() ? POLLOUT : 0)), 0};
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>((sending ? nextBurst : end + drain) - now);
    ::poll(&p, 1, int(std::clamp<int64_t>(wait.count(), 0, 50)));
    if (outSent < out.size() && (p.revents & POLLOUT)) {
      ssize_t n = ::send(fd.get(), out.data() + outSent, out.size() - outSent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) outSent += size_t(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        fail(std::string("send: ") + std::strerror(errno));
        break;
      }
      if (outSent == out.size()) {
        out.clear();
        outSent = 0;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      std::byte buf[16384];
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        result.missing = scheduled.size() - nextAcked;
        fail(n == 0 ? "the server closed the connection" : std::string("recv: ") + std::strerror(errno));
        break;
      }
      if (n > 0) {
        Clock::time_point at = Clock::now();
        in.insert(in.end(), buf, buf + n);
        size_t used = 0;
        while (in.size() - used >= protocol::kAckFrameBytes) {
          const std::byte* ack = in.data() + used;
          used += protocol::kAckFrameBytes;
          uint64_t n = firstId + nextAcked;
          protocol::Id id = protocol::formatId(n);
          bool matches = ack[4] == std::byte{0x81} && std::memcmp(ack + 5, id.data(), id.size()) == 0;
          if (!matches || nextAcked >= scheduled.size()) {
            ++result.misordered;
            fail(fmt::format("ack {} is not the ack of request {}", result.ok + result.busy + result.other, n));
          }
          if (nextAcked >= scheduled.size()) continue;
          uint8_t code = uint8_t(ack[protocol::kAckFrameBytes - 1]);
          uint64_t latency = nanosSince(scheduled[nextAcked], at);
          if (code == 0) {
            ++result.ok;
            result.okIds.push_back(n);
            result.okLatencyNs.push_back(latency);
          } else if (code == 255) {
            ++result.busy;
            result.busyIds.push_back(n);
            result.busyLatencyNs.push_back(latency);
          } else {
            ++result.other;
          }
          ++nextAcked;
        }
        in.erase(in.begin(), in.begin() + long(used));
      }
    }
  }
  result.sent = scheduled.size();
}

PacedLoad::PacedLoad(int port, unsigned connections, double rate, std::chrono::milliseconds duration,
                     std::chrono::milliseconds drain, std::string payload, uint64_t idBase) {
  Clock::time_point start = Clock::now();
  for (unsigned c = 0; c < connections; ++c) {
    auto connection = std::make_unique<Connection>();
    connection->port = port;
    connection->rate = rate / connections;
    connection->duration = duration;
    connection->drain = drain;
    connection->payload = payload;
    connection->firstId = (c + 1) * 10'000'000 + idBase;
    connections_.push_back(std::move(connection));
  }
  for (auto& connection : connections_) threads_.emplace_back([c = connection.get(), start] { c->run(start); });
}

PacedLoad::~PacedLoad() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

PacedLoadResult PacedLoad::finish() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  PacedLoadResult sum;
  for (auto& connection : connections_) {
    const PacedLoadResult& r = connection->result;
    sum.sent += r.sent;
    sum.ok += r.ok;
    sum.busy += r.busy;
    sum.other += r.other;
    sum.misordered += r.misordered;
    sum.missing += r.missing;
    if (sum.problem.empty()) sum.problem = r.problem;
    sum.okIds.insert(sum.okIds.end(), r.okIds.begin(), r.okIds.end());
    sum.busyIds.insert(sum.busyIds.end(), r.busyIds.begin(), r.busyIds.end());
    sum.okLatencyNs.insert(sum.okLatencyNs.end(), r.okLatencyNs.begin(), r.okLatencyNs.end());
    sum.busyLatencyNs.insert(sum.busyLatencyNs.end(), r.busyLatencyNs.begin(), r.busyLatencyNs.end());
  }
  std::sort(sum.okLatencyNs.begin(), sum.okLatencyNs.end());
  std::sort(sum.busyLatencyNs.begin(), sum.busyLatencyNs.end());
  return sum;
}

uint64_t PacedLoadResult::quantile(const std::vector<uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, size_t(q * double(sorted.size())))];
}

std::string PacedLoadResult::summary() const {
  return fmt::format("sent {} ok {} busy {} other {} misordered {} missing {}; ok p50 {:.1f} ms p99 {:.1f} ms max "
                     "{:.1f} ms; busy p99 {:.1f} ms; {}",
                     sent, ok, busy, other, misordered, missing, quantile(okLatencyNs, 0.5) / 1e6,
                     quantile(okLatencyNs, 0.99) / 1e6, quantile(okLatencyNs, 1.0) / 1e6,
                     quantile(busyLatencyNs, 0.99) / 1e6, problem.empty() ? "no problem" : problem);
}

}  // namespace tcpfork::test
