#include "master/listeners.h"

#include <fcntl.h>
#include <systemd/sd-daemon.h>

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/socket.h"

namespace tcpfork {

Listeners::Listeners() {
  int n = sd_listen_fds(1);  // 1: unset LISTEN_* so workers do not see them
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      inherited_.emplace_back(fd);
    }
  }
}

void Listeners::ensure(unsigned index, const std::vector<std::string>& addresses) {
  if (socketActivated()) return;
  for (const auto& address : addresses) {
    bool present = std::any_of(entries_.begin(), entries_.end(),
                               [&](const Entry& e) { return e.index == index && e.address == address; });
    if (present) continue;
    auto bound = boundPort_.find(address);
    UniqueFd fd = listenTcp(parseAddress(bound != boundPort_.end() ? bound->second : address));
    if (bound == boundPort_.end()) boundPort_[address] = localAddress(fd.get()).toString();
    entries_.push_back({index, address, std::move(fd)});
  }
}

std::vector<int> Listeners::fdsFor(unsigned index, const std::vector<std::string>& addresses) const {
  std::vector<int> fds;
  if (socketActivated()) {
    for (const auto& fd : inherited_) fds.push_back(fd.get());
    return fds;
  }
  for (const auto& address : addresses) {
    for (const auto& e : entries_) {
      if (e.index == index && e.address == address) fds.push_back(e.fd.get());
    }
  }
  return fds;
}

void Listeners::keepOnly(unsigned count, const std::vector<std::string>& addresses) {
  std::erase_if(entries_, [&](const Entry& e) {
    return e.index >= count || std::find(addresses.begin(), addresses.end(), e.address) == addresses.end();
  });
}

std::string Listeners::describe() const {
  if (socketActivated()) {
    std::vector<std::string> bound;
    for (const auto& fd : inherited_) bound.push_back(localAddress(fd.get()).toString());
    return fmt::format("{} (from systemd, shared by all workers)", fmt::join(bound, ", "));
  }
  std::vector<std::string> addresses;
  for (const auto& e : entries_) {
    std::string bound = localAddress(e.fd.get()).toString();
    if (std::find(addresses.begin(), addresses.end(), bound) == addresses.end()) addresses.push_back(bound);
  }
  return fmt::format("{} ({} sockets)", fmt::join(addresses, ", "), entries_.size());
}

}  // namespace tcpfork
