#pragma once
// The master's descriptor budget: how many admin HTTP connections its
// RLIMIT_NOFILE can afford while keeping, in reserve, what supervision needs
// at its peak, so that scrapers (or anyone on the admin port) can never take
// the descriptors a respawn, a reload or a binary upgrade opens. Called once
// at start, on the master.

#include <cstdint>

namespace tcpfork {

// The most admin connections a master ever keeps open.
inline constexpr unsigned kMaxAdminConnections = 64;

// What the limit leaves after the reserve (two generations of max_workers
// listeners per address, plus the pipes and files of spawning, upgrading and
// reading /proc), at most kMaxAdminConnections and at least 1. Warns, naming
// the numbers, when the limit leaves fewer than kMaxAdminConnections.
unsigned adminConnectionLimit(unsigned maxWorkers, unsigned listenAddresses);

// Workers inherit the master's RLIMIT_NOFILE unless rlimit_nofile is set
// (the config check then holds it to max_connections). Inherited, it may be
// too small for max_connections: warns, naming the numbers, where a worker
// would run out of descriptors (it then pauses accepting) before it reaches
// max_connections.
void warnIfWorkersInheritTooFewDescriptors(uint64_t maxConnections, uint64_t rlimitNofile);

}  // namespace tcpfork
