#pragma once
// The worker heartbeat, both ends: a worker's loop timer stamps its slot with
// CLOCK_MONOTONIC milliseconds, and the master compares that stamp with its
// own clock to find a worker that stopped running its loop. Both processes
// read the same clock, so the difference means the same on either side.

#include <cstdint>

#include "stats/layout.h"

namespace tcpfork::stats {

uint64_t monotonicNanos();
inline uint64_t monotonicMillis() { return monotonicNanos() / 1'000'000; }

// The worker end: proves the loop ran just now.
inline void beat(Slot& slot) { store(slot.heartbeatMonotonicMs, monotonicMillis()); }
// The same at a time just read (CLOCK_MONOTONIC ns).
inline void beatAt(Slot& slot, uint64_t nowNs) { store(slot.heartbeatMonotonicMs, nowNs / 1'000'000); }

// The master end: how long the slot has gone without a beat (0 if it beat
// after we looked at the clock).
inline uint64_t silentForMs(const Slot& slot) {
  uint64_t now = monotonicMillis();
  uint64_t last = load(slot.heartbeatMonotonicMs);
  return now > last ? now - last : 0;
}

}  // namespace tcpfork::stats
