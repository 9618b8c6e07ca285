#include "stats/header_lock.h"

#include "stats/process_info.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>

namespace tcpfork::stats {
namespace {

// Thousands of times the longest critical section, even on a loaded machine.
constexpr auto kPatience = std::chrono::seconds(1);

}  // namespace

HeaderLock::HeaderLock(Header& header) : header_(header), self_(uint64_t(::getpid())) {
  std::atomic_ref<uint64_t> word(header_.writerPid);
  auto since = std::chrono::steady_clock::now();
  for (unsigned attempt = 0;; ++attempt) {
    uint64_t holder = 0;
    if (word.compare_exchange_weak(holder, self_, std::memory_order_acquire, std::memory_order_relaxed)) return;
    // A holder that died cannot release, and one that holds on past any
    // critical section is stopped or forged: take its lock over. A half-done
    // fold left foldSequence odd: make it even again so readers proceed
    // (they may have seen a torn total once; nothing is lost from retired).
    if (holder != 0 && attempt % 64 == 63 &&
        (!processRunning(pid_t(holder)) || std::chrono::steady_clock::now() - since > kPatience) &&
        word.compare_exchange_strong(holder, self_, std::memory_order_acquire, std::memory_order_relaxed)) {
      std::atomic_ref<uint64_t> sequence(header_.foldSequence);
      if (sequence.load(std::memory_order_relaxed) % 2 == 1) sequence.fetch_add(1, std::memory_order_release);
      return;
    }
    if (attempt < 1000) {
      ::sched_yield();
    } else {
      ::usleep(100);
    }
  }
}

HeaderLock::~HeaderLock() {
  std::atomic_ref<uint64_t>(header_.writerPid).store(0, std::memory_order_release);
}

}  // namespace tcpfork::stats
