#include "master/supervise/listeners.h"

#include <fcntl.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "base/socket.h"

namespace tcpfork {

namespace {

constexpr const char* kListenersEnv = "TCPFORK_LISTENERS";       // "index,fd,address;..."
constexpr const char* kInheritedEnv = "TCPFORK_INHERITED_FDS";  // "fd,fd,..." (from systemd)

int handedFd(std::string_view text) {
  int fd = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (ec != std::errc() || end != text.data() + text.size() || fd < 3 || sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
    throw std::runtime_error(fmt::format("binary upgrade: '{}' is not an inherited listening socket", text));
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (!text.empty()) {
    size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    text = at == text.npos ? std::string_view() : text.substr(at + 1);
  }
  return parts;
}

}  // namespace

Listeners::Listeners() {
  if (const char* handed = std::getenv(kListenersEnv)) {
    std::string entries = handed;
    std::string inherited = std::getenv(kInheritedEnv) ? std::getenv(kInheritedEnv) : "";
    ::unsetenv(kListenersEnv);
    ::unsetenv(kInheritedEnv);
    for (auto entry : split(entries, ';')) {
      auto fields = split(entry, ',');
      unsigned index = 0;
      if (fields.size() != 3 ||
          std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), index).ec != std::errc()) {
        throw std::runtime_error(fmt::format("binary upgrade: malformed {} entry '{}'", kListenersEnv, entry));
      }
      UniqueFd fd(handedFd(fields[1]));
      boundPort_.emplace(std::string(fields[2]), localAddress(fd.get()).toString());
      entries_.push_back({index, std::string(fields[2]), std::move(fd)});
    }
    for (auto fd : split(inherited, ',')) inherited_.emplace_back(handedFd(fd));
    return;
  }
  int n = sd_listen_fds(1);  // 1: unset LISTEN_* so workers do not see them
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      inherited_.emplace_back(fd);
    }
  }
}

std::vector<std::string> Listeners::handoverEnvironment(std::vector<int>& inheritFds) const {
  std::vector<std::string> entries;
  for (const auto& e : entries_) {
    entries.push_back(fmt::format("{},{},{}", e.index, e.fd.get(), e.address));
    inheritFds.push_back(e.fd.get());
  }
  std::vector<std::string> inherited;
  for (const auto& fd : inherited_) {
    inherited.push_back(std::to_string(fd.get()));
    inheritFds.push_back(fd.get());
  }
  return {fmt::format("{}={}", kListenersEnv, fmt::join(entries, ";")),
          fmt::format("{}={}", kInheritedEnv, fmt::join(inherited, ","))};
}

void Listeners::ensure(unsigned index, const std::vector<std::string>& addresses) {
  if (socketActivated()) {
    if (joinInherited_ && !joinFailed_) joinInheritedGroups(index);
    return;
  }
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

void Listeners::joinInheritedGroups(unsigned index) {
  for (const auto& inherited : inherited_) {
    std::string address = localAddress(inherited.get()).toString();
    bool present = std::any_of(entries_.begin(), entries_.end(),
                               [&](const Entry& e) { return e.index == index && e.address == address; });
    if (present) continue;
    int reusePort = 0;
    socklen_t len = sizeof reusePort;
    ::getsockopt(inherited.get(), SOL_SOCKET, SO_REUSEPORT, &reusePort, &len);
    try {
      if (!reusePort) throw std::runtime_error("the socket unit did not set ReusePort=yes");
      entries_.push_back({index, address, listenTcp(parseAddress(address))});
    } catch (const std::exception& e) {
      spdlog::warn("socket activation: worker {} cannot have a socket of its own on {} ({}); every worker shares "
                   "the sockets systemd passed, unsteered",
                   index, address, e.what());
      joinFailed_ = true;
      entries_.clear();
      return;
    }
  }
}

std::vector<int> Listeners::fdsFor(unsigned index, const std::vector<std::string>& addresses) const {
  std::vector<int> fds;
  if (socketActivated()) {
    for (const auto& fd : inherited_) fds.push_back(fd.get());
    for (const auto& e : entries_) {
      if (e.index == index) fds.push_back(e.fd.get());
    }
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
    // Under socket activation the addresses are systemd's, not the config's.
    bool listed = socketActivated() || std::find(addresses.begin(), addresses.end(), e.address) != addresses.end();
    bool drop = e.index >= count || !listed;
    if (drop && beforeClose_) beforeClose_({e.address, e.index, e.fd.get()});
    return drop;
  });
}

std::vector<IndexedSocket> Listeners::sockets() const {
  std::vector<IndexedSocket> out;
  for (const auto& e : entries_) out.push_back({e.address, e.index, e.fd.get()});
  return out;
}

std::string Listeners::describe() const {
  if (socketActivated()) {
    std::vector<std::string> bound;
    for (const auto& fd : inherited_) bound.push_back(localAddress(fd.get()).toString());
    if (!entries_.empty()) {
      return fmt::format("{} (from systemd, shared by all workers, and {} sockets of their own in its group)",
                         fmt::join(bound, ", "), entries_.size());
    }
    return fmt::format("{} (from systemd, shared by all workers)", fmt::join(bound, ", "));
  }
  std::vector<std::string> addresses;
  for (const auto& e : entries_) {
    std::string bound = localAddress(e.fd.get()).toString();
    if (std::find(addresses.begin(), addresses.end(), bound) == addresses.end()) addresses.push_back(bound);
  }
  return fmt::format("{} ({} sockets)", fmt::join(addresses, ", "), entries_.size());
}

std::vector<ListenQueue> Listeners::queues() const {
  std::vector<ListenQueue> out;
  auto add = [&](int fd, std::string worker) {
    if (auto queue = acceptQueue(fd)) out.push_back({localAddress(fd).toString(), std::move(worker), *queue});
  };
  for (const auto& fd : inherited_) add(fd.get(), "shared");
  for (const auto& e : entries_) add(e.fd.get(), std::to_string(e.index));
  return out;
}

}  // namespace tcpfork
