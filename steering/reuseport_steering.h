#pragma once
// ReuseportSteering: the reuseport selection program (steer.bpf.c) on the
// master's listening sockets. One program and its maps per reuseport group
// (one group per listening address); each maps worker index -> that
// worker's listening socket and selects, for every new connection and for
// the queued connections of a listener being closed, among the indices the
// master last published. Owned by the Master; used on its loop.
//
// Loading needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN) and a kernel
// with SELECT_OR_MIGRATE programs (5.14); without them available() is false
// with the reason, and the sockets stay plain SO_REUSEPORT.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "steering/status.h"

struct steer;  // the libbpf skeleton (steer.skel.h), kept out of this header

namespace tcpfork::steering {

// A listening socket the master holds: its group (the address it is bound
// to) and the worker index it serves.
struct SteeredSocket {
  std::string group;
  unsigned index = 0;
  int fd = -1;
};

class ReuseportSteering {
 public:
  // The maps hold worker indices below `maxWorkers`.
  explicit ReuseportSteering(unsigned maxWorkers);
  ~ReuseportSteering();
  ReuseportSteering(const ReuseportSteering&) = delete;
  ReuseportSteering& operator=(const ReuseportSteering&) = delete;

  // Loads the program once, on the first call: whether it could, and if not,
  // why (for the one log line that says steering is off).
  bool available();
  const std::string& unavailableReason() const { return unavailable_; }
  // A program steers at least one group.
  bool active() const;

  // Puts each socket in its group's map (again, if the index has a new
  // socket), loading and attaching a program for a group seen for the first
  // time; forgets groups no longer listed. A socket that cannot be added yet
  // (still in the map of the master this one upgraded) is tried again at the
  // next call.
  void sync(const std::vector<SteeredSocket>& sockets);
  // From now on every group selects among `eligible` (ascending indices).
  void publish(const std::vector<unsigned>& eligible);
  // `index`'s socket in `group` is about to close: out of the set and of the
  // map at once, before its worker drains what is queued on it.
  void retire(const std::string& group, unsigned index);
  // A binary upgrade's new master serves: it attaches its own program, and
  // can put the sockets in its maps only once ours are gone (a socket sits
  // in one sockarray at a time). Frees every program and map of ours; sync()
  // does nothing more until reattach().
  void release();
  // Attaches every group's program again (a new master of a failed binary
  // upgrade attached its own, then died); after release(), loads them anew.
  void reattach();
  ProgramStats stats() const;

 private:
  struct SkeletonDeleter {
    void operator()(steer* skeleton) const;
  };
  using Skeleton = std::unique_ptr<steer, SkeletonDeleter>;
  struct Group {
    Skeleton skeleton;
    std::map<unsigned, uint64_t> cookies;  // index -> cookie of the socket in the map
    bool attached = false;
    bool busy = false;  // a socket is in another master's map (binary upgrade)
    std::set<unsigned> warned;  // indices whose socket could not be added, said once
    std::vector<unsigned> published;
    uint32_t live = 0;                     // which of the two sets the program reads
  };

  Skeleton load();
  void insert(const std::string& name, Group& group, const SteeredSocket& socket);
  void attach(const std::string& name, Group& group, int fd);
  void write(Group& group, const std::vector<unsigned>& eligible);

  unsigned maxWorkers_;
  std::optional<bool> available_;
  std::string unavailable_;
  std::map<std::string, Group> groups_;
  std::set<std::string> failedGroups_;  // no program could be loaded for them: said once, not retried
  bool released_ = false;
  std::vector<unsigned> eligible_;
};

}  // namespace tcpfork::steering
