#pragma once
// Listeners: the master's listening sockets, kept open for its whole life so
// that a worker's death or a reload never closes one (and never resets a
// queued connection). One SO_REUSEPORT socket per worker index per address;
// or, under systemd socket activation, the inherited sockets, shared by all
// workers. A master started by a binary upgrade inherits its predecessor's
// sockets instead (handoverEnvironment()). Owned by the Master; used on its loop.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/socket.h"
#include "base/unique_fd.h"

namespace tcpfork {

// One listening socket's accept queue, as /metrics labels it.
struct ListenQueue {
  std::string address;  // as bound: "127.0.0.1:8888"
  std::string worker;   // the worker index it serves, or "shared" (systemd)
  AcceptQueue queue;
};

// A socket of one worker index on one address.
struct IndexedSocket {
  std::string address;  // as configured: the reuseport group it belongs to
  unsigned index;
  int fd;
};

class Listeners {
 public:
  // Adopts sockets passed by systemd (LISTEN_FDS/LISTEN_PID), or by the
  // master this one upgrades (TCPFORK_LISTENERS), if any. Throws
  // std::runtime_error on a malformed handover.
  Listeners();

  bool socketActivated() const { return !inherited_.empty(); }
  // Under socket activation, also give each worker index a socket of its own
  // in each inherited socket's SO_REUSEPORT group, for steering to choose
  // among (the inherited ones stay shared: what systemd queued while no
  // master ran is served). Possible only when the unit set ReusePort=yes and
  // this process runs as the socket's owner; otherwise said once, and the
  // sockets stay shared.
  void joinInherited() { joinInherited_ = true; }

  // Makes sure worker `index` has a socket on every address in `addresses`
  // (binding any that are missing). Throws std::system_error naming the address.
  void ensure(unsigned index, const std::vector<std::string>& addresses);
  // The fds worker `index` serves, one per address.
  std::vector<int> fdsFor(unsigned index, const std::vector<std::string>& addresses) const;
  // Closes the master's copies for indices >= `count`, and for addresses no
  // longer listed.
  void keepOnly(unsigned count, const std::vector<std::string>& addresses);
  // Called for each socket keepOnly() is about to close, before it does.
  void onDrop(std::function<void(const IndexedSocket&)> beforeClose) { beforeClose_ = std::move(beforeClose); }
  // Every per-index socket (under socket activation, those that joined).
  std::vector<IndexedSocket> sockets() const;
  std::string describe() const;
  // Every socket's accept queue now (read at scrape time).
  std::vector<ListenQueue> queues() const;

  // For a binary upgrade: the environment entries that describe every
  // socket to the new master, and the fds it must inherit.
  std::vector<std::string> handoverEnvironment(std::vector<int>& inheritFds) const;

 private:
  void joinInheritedGroups(unsigned index);

  struct Entry {
    unsigned index;
    std::string address;
    UniqueFd fd;
  };
  std::vector<Entry> entries_;
  // "127.0.0.1:0" binds an ephemeral port once; the other workers' sockets
  // join that port, so one address means one port.
  std::map<std::string, std::string> boundPort_;
  std::vector<UniqueFd> inherited_;
  bool joinInherited_ = false;
  bool joinFailed_ = false;
  std::function<void(const IndexedSocket&)> beforeClose_;
};

}  // namespace tcpfork
