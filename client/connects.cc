#include "client/connects.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "base/socket.h"
#include "base/unique_fd.h"
#include "protocol/codec.h"

namespace tcpfork::client {
namespace {

using Clock = std::chrono::steady_clock;
using namespace protocol;

enum class Outcome { kAcked, kConnectFailed, kReset, kUnanswered, kWrongAck };

struct Attempt {
  Outcome outcome = Outcome::kAcked;
  std::string error;
};

// One connection: connect, one Submit, its ack, close.
Attempt once(const SocketAddress& address, uint64_t n, Clock::time_point deadline) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return {Outcome::kConnectFailed, fmt::format("socket: {}", std::strerror(errno))};
  if (::connect(fd.get(), address.get(), address.length) != 0) {
    return {Outcome::kConnectFailed, fmt::format("connect: {}", std::strerror(errno))};
  }
  setNoDelay(fd.get());
  Id id = formatId(n);
  std::array<std::byte, 32> frame{};
  size_t frameBytes = requestFrameBytes(0);
  encodeRequest(Command::kSubmit, id, {}, frame.data());
  if (::send(fd.get(), frame.data(), frameBytes, MSG_NOSIGNAL) != ssize_t(frameBytes)) {
    return {Outcome::kReset, fmt::format("send: {}", std::strerror(errno))};
  }
  std::array<std::byte, kAckFrameBytes> in{};
  size_t have = 0;
  while (have < in.size()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return {Outcome::kUnanswered, "no ack within the timeout"};
    pollfd p{fd.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, int(left));
    if (ready < 0 && errno != EINTR) return {Outcome::kReset, fmt::format("poll: {}", std::strerror(errno))};
    if (ready <= 0) continue;
    ssize_t got = ::read(fd.get(), in.data() + have, in.size() - have);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return {Outcome::kReset, fmt::format("read: {}", std::strerror(errno))};
    if (got == 0) return {Outcome::kReset, "closed by the server before the ack"};
    have += size_t(got);
  }
  auto ack = decodeAck(in, kDefaultMaxFrameBytes);
  if (ack.status != DecodeStatus::kFrame || ack.message.command != Command::kSubmitAck ||
      std::memcmp(ack.message.id.data(), id.data(), kIdBytes) != 0 || ack.message.result != kResultOk) {
    return {Outcome::kWrongAck, "an ack that does not match its request"};
  }
  return {};
}

}  // namespace

ConnectsResult runConnects(const ConnectsOptions& options, const std::atomic<bool>& stop) {
  SocketAddress address = parseAddress(options.addr);
  auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeoutSeconds));
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.durationSeconds));
  std::atomic<uint64_t> attempts{0}, failures{0};
  std::mutex merge;
  ConnectsResult result;
  auto run = [&](unsigned thread) {
    ConnectsResult mine;
    for (uint64_t n = thread; Clock::now() < end && !stop.load(std::memory_order_relaxed); n += options.concurrency) {
      auto began = Clock::now();
      Attempt a = once(address, n % 100'000'000, began + timeout);
      attempts.fetch_add(1, std::memory_order_relaxed);
      switch (a.outcome) {
        case Outcome::kAcked: {
          auto us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - began).count());
          ++mine.acked;
          mine.latencyUs.add(us);
          if (us > uint64_t(options.slowMs) * 1000) ++mine.slow;
          continue;
        }
        case Outcome::kConnectFailed: ++mine.connectFailed; break;
        case Outcome::kReset: ++mine.reset; break;
        case Outcome::kUnanswered: ++mine.unanswered; break;
        case Outcome::kWrongAck: ++mine.wrongAcks; break;
      }
      failures.fetch_add(1, std::memory_order_relaxed);
      ++mine.errors[a.error];
    }
    std::lock_guard lock(merge);
    result.acked += mine.acked;
    result.connectFailed += mine.connectFailed;
    result.reset += mine.reset;
    result.unanswered += mine.unanswered;
    result.wrongAcks += mine.wrongAcks;
    result.slow += mine.slow;
    for (const auto& [what, n] : mine.errors) result.errors[what] += n;
    result.latencyUs += mine.latencyUs;
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.concurrency; ++t) threads.emplace_back(run, t);
  if (options.progress) {
    // Progress once a second on stderr, so that stdout holds only the report.
    auto next = start + std::chrono::seconds(1);
    while (Clock::now() < end && !stop.load()) {
      std::this_thread::sleep_until(std::min(next, end));
      if (Clock::now() >= next) {
        fmt::print(stderr, "  {:.0f}s: {} connections, {} failed\n",
                   std::chrono::duration<double>(Clock::now() - start).count(), attempts.load(), failures.load());
        next += std::chrono::seconds(1);
      }
    }
  }
  for (auto& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

void printConnects(FILE* out, const ConnectsOptions& options, const ConnectsResult& r) {
  uint64_t total = r.acked + r.failed() + r.wrongAcks;
  fmt::print(out, "connects: {} in {:.1f} s ({:.0f}/s), {} at a time, to {}\n", total, r.seconds,
             r.seconds > 0 ? double(total) / r.seconds : 0.0, options.concurrency, options.addr);
  fmt::print(out, "  acked {}; failed {} (connect {}, reset before the ack {}, no ack within {} s {}); wrong acks {}\n",
             r.acked, r.failed(), r.connectFailed, r.reset, options.timeoutSeconds, r.unanswered, r.wrongAcks);
  auto ms = [](uint64_t us) { return double(us) / 1000.0; };
  fmt::print(out, "  connect to ack: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms; {} acked later than {} ms\n",
             ms(r.latencyUs.percentile(0.5)), ms(r.latencyUs.percentile(0.99)), ms(r.latencyUs.max()), r.slow,
             options.slowMs);
  for (const auto& [what, n] : r.errors) fmt::print(out, "  {} x {}\n", n, what);
}

nlohmann::json connectsJson(const ConnectsOptions& options, const ConnectsResult& r) {
  return {{"addr", options.addr},
          {"concurrency", options.concurrency},
          {"seconds", r.seconds},
          {"acked", r.acked},
          {"failed", r.failed()},
          {"connect_failed", r.connectFailed},
          {"reset", r.reset},
          {"unanswered", r.unanswered},
          {"wrong_acks", r.wrongAcks},
          {"slow", r.slow},
          {"slow_ms", options.slowMs},
          {"latency_us", {{"p50", r.latencyUs.percentile(0.5)}, {"p99", r.latencyUs.percentile(0.99)}, {"max", r.latencyUs.max()}}},
          {"errors", r.errors}};
}

}  // namespace tcpfork::client
