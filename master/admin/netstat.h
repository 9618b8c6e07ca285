#pragma once
// The host's listen-queue counters (TcpExt ListenOverflows and ListenDrops
// in /proc/net/netstat): connections the kernel turned away because an
// accept queue was full, for every socket of the network namespace, ours or
// not. Read by the master at scrape time.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tcpfork {

struct ListenCounters {
  uint64_t overflows = 0;  // a full accept queue: the handshake's ACK was dropped
  uint64_t drops = 0;      // every SYN or ACK dropped on a listener, overflows included
};

// Parses the text of /proc/net/netstat (pairs of "TcpExt:" name and value
// lines); empty when either counter is missing.
std::optional<ListenCounters> parseListenCounters(std::string_view netstat);
std::optional<ListenCounters> readListenCounters(const std::string& path = "/proc/net/netstat");

}  // namespace tcpfork
