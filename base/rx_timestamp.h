#pragma once
// Kernel receive timestamps: the time the network stack took in the bytes a
// read returns (SO_TIMESTAMPNS, software, CLOCK_REALTIME), so a request's
// duration can count the time it waited in the socket. For TCP one read
// yields one stamp: that of the newest segment the read consumed.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace tcpfork {

// Asks the kernel to stamp what `fd` receives. Set on a listening socket,
// every socket it accepts inherits it. Returns false (errno set) if refused.
bool enableReceiveTimestamps(int fd);

// read(2) by recvmsg(2): `rxRealtimeNs` is the kernel's stamp of the bytes
// read, or 0 when the kernel attached none (timestamps off on this socket).
ssize_t readTimestamped(int fd, std::span<std::byte> into, uint64_t& rxRealtimeNs);

// CLOCK_REALTIME in ns: the clock the kernel's stamps use.
uint64_t realtimeNanos();

// From `fromNs` to `toNs`; `toNs` before `fromNs` (a stamp that could not be
// placed, see worker/clock_epochs.h) counts as 0, not as a wrapped-around
// eternity.
inline uint64_t clampedElapsed(uint64_t fromNs, uint64_t toNs) { return toNs > fromNs ? toNs - fromNs : 0; }

}  // namespace tcpfork
