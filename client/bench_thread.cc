#include "client/bench_thread.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <system_error>

namespace tcpfork::client {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kReconnectDelayNs = 100'000'000;
// Upper bound on one wait, so stop requests and deadlines are noticed.
constexpr int64_t kMaxWaitNs = 100'000'000;
constexpr int kMaxEvents = 256;

}  // namespace

int64_t monotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * kNsPerSecond + ts.tv_nsec;
}

BenchThread::BenchThread(const BenchOptions& options, const SocketAddress& address,
                         const std::vector<uint64_t>& quotas, ThreadCounters& counters, const std::atomic<bool>& stop)
    : options_(options), address_(address), counters_(counters), stop_(stop), epoll_(epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  slots_.resize(quotas.size());
  for (size_t i = 0; i < quotas.size(); ++i) {
    slots_[i].connection =
        std::make_unique<BenchConnection>(options.payloadBytes, options.window, quotas[i], counters);
  }
  if (options.rate > 0) {
    intervalNs_ = static_cast<int64_t>(kNsPerSecond * double(options.connections) / options.rate);
    intervalNs_ = std::max<int64_t>(intervalNs_, 1);
    // Spread connections over one interval so the offered load is smooth.
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].offsetNs = intervalNs_ * int64_t(i) / int64_t(std::max<size_t>(1, slots_.size()));
    }
  }
}

bool BenchThread::connect(Slot& slot, int64_t nowNs) {
  if (!slot.connection->connect(address_)) {
    slot.reconnectAtNs = nowNs + kReconnectDelayNs;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &slot;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, slot.connection->fd(), &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl(ADD)");
  }
  slot.pollingOut = false;
  slot.connectedAtNs = nowNs;
  return true;
}

void BenchThread::onClosed(Slot& slot, int64_t nowNs) {
  ThreadCounters::add(counters_.closedByServer, 1);
  ThreadCounters::add(counters_.unackedOnClose, slot.connection->close());  // close also leaves the epoll set
  // Reconnect at once after a drain; back off from a server that closes new
  // connections straight away (max_connections), instead of a connect storm.
  slot.reconnectAtNs = nowNs - slot.connectedAtNs < kNsPerSecond ? nowNs + kReconnectDelayNs : nowNs;
}

void BenchThread::topUp(Slot& slot, int64_t nowNs) {
  BenchConnection& c = *slot.connection;
  if (!sending_ || !c.connected()) return;
  if (intervalNs_ == 0) {
    c.queue(c.room(), nowNs);
    return;
  }
  // Open loop: everything whose intended time has come, stamped with that time,
  // so a stalled server shows up as latency instead of as fewer requests.
  int64_t firstDue = startNs_ + slot.offsetNs;
  if (nowNs < firstDue) return;
  int64_t until = std::min(nowNs, sendUntilNs_ - 1);
  uint64_t due = static_cast<uint64_t>((until - firstDue) / intervalNs_) + 1;
  if (due <= slot.scheduled) return;
  uint64_t count = std::min<uint64_t>(due - slot.scheduled, c.room());
  c.queue(count, firstDue + int64_t(slot.scheduled) * intervalNs_, intervalNs_);
  slot.scheduled += count;
}

void BenchThread::flush(Slot& slot, int64_t nowNs) {
  BenchConnection& c = *slot.connection;
  if (!c.connected()) return;
  if (!c.writePending()) {
    onClosed(slot, nowNs);
    return;
  }
  if (c.wantsWrite() != slot.pollingOut) {
    slot.pollingOut = c.wantsWrite();
    epoll_event ev{};
    ev.events = slot.pollingOut ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.ptr = &slot;
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd(), &ev);
  }
}

int64_t BenchThread::nextDueNs() const {
  int64_t next = INT64_MAX;
  for (const Slot& slot : slots_) {
    if (!slot.connection->connected() || slot.connection->room() == 0) continue;
    next = std::min(next, startNs_ + slot.offsetNs + int64_t(slot.scheduled) * intervalNs_);
  }
  return next;
}

bool BenchThread::allQuotasDone() const {
  return std::all_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.connection->quotaDone(); });
}

uint64_t BenchThread::inFlight() const {
  uint64_t n = 0;
  for (const Slot& slot : slots_) n += slot.connection->inFlight();
  return n;
}

void BenchThread::run() {
  startNs_ = monotonicNowNs();
  sendUntilNs_ = startNs_ + static_cast<int64_t>(options_.durationSeconds * kNsPerSecond);
  for (Slot& slot : slots_) {
    if (connect(slot, startNs_)) {
      topUp(slot, startNs_);
      flush(slot, startNs_);
    }
  }

  int64_t drainUntilNs = 0;
  bool endedByQuota = false;
  epoll_event events[kMaxEvents];
  for (;;) {
    int64_t now = monotonicNowNs();
    if (sending_ && (now >= sendUntilNs_ || stop_.load(std::memory_order_relaxed) || allQuotasDone())) {
      sending_ = false;
      endedByQuota = allQuotasDone();
      measuredAcks_ = ThreadCounters::read(counters_.acked);
      measuredOk_ = ThreadCounters::read(counters_.ok);
      measuredNs_ = now - startNs_;
      drainUntilNs = now + static_cast<int64_t>(options_.drainSeconds * kNsPerSecond);
    }
    if (!sending_ && (inFlight() == 0 || now >= drainUntilNs)) break;

    int64_t waitNs = kMaxWaitNs;
    if (sending_) {
      waitNs = std::min(waitNs, sendUntilNs_ - now);
      if (intervalNs_ > 0) waitNs = std::min(waitNs, nextDueNs() - now);
    } else {
      waitNs = std::min(waitNs, drainUntilNs - now);
    }
    waitNs = std::max<int64_t>(waitNs, 0);
    timespec timeout{static_cast<time_t>(waitNs / kNsPerSecond), static_cast<long>(waitNs % kNsPerSecond)};
    int n = epoll_pwait2(epoll_.get(), events, kMaxEvents, &timeout, nullptr);
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_pwait2");
    now = monotonicNowNs();

    for (int i = 0; i < n; ++i) {
      Slot& slot = *static_cast<Slot*>(events[i].data.ptr);
      if (!slot.connection->connected()) continue;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (slot.connection->readAcks(now) < 0) {
          onClosed(slot, now);
          continue;
        }
      }
      if (intervalNs_ == 0) topUp(slot, now);
      flush(slot, now);
    }

    if (!sending_) continue;
    for (Slot& slot : slots_) {
      if (!slot.connection->connected()) {
        if (now >= slot.reconnectAtNs && connect(slot, now)) {
          topUp(slot, now);
          flush(slot, now);
        }
      } else if (intervalNs_ > 0) {
        topUp(slot, now);
        flush(slot, now);
      }
    }
  }
  if (endedByQuota) {
    measuredAcks_ = ThreadCounters::read(counters_.acked);
    measuredOk_ = ThreadCounters::read(counters_.ok);
    measuredNs_ = monotonicNowNs() - startNs_;
  }
  unackedAtEnd_ = inFlight();
  for (Slot& slot : slots_) {
    if (slot.connection->connected()) slot.connection->close();  // unackedAtEnd_ has these
  }
}

}  // namespace tcpfork::client
