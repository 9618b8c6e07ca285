#pragma once
// SegmentLocator: the file that makes an instance name one master's, and
// tells readers where that master's stats segment is. The segment itself is
// an anonymous memfd (stats/segment.h); the file /dev/shm/<name>.stats holds
// the pid of the master that owns it and that master's descriptor number for
// it, so that root or the master's user can open /proc/<pid>/fd/<n>; and the
// pidfile and config file that master runs with, so that `tcpfork -s` finds
// it however it was started (master/cli/master_finder.h).
//
// The master holds the file under an exclusive flock for its whole life,
// taken before anything of the instance exists: of two masters of one name,
// however close together they start, one takes the lock and the other
// refuses to start, naming it. A file left by a dead master is unlocked and
// taken over. A binary upgrade's new master inherits the same open file, so
// the lock spans both masters; the one that serves last publishes itself.
// Owned by the master's StatsSegment, on its loop; readers only call find().

#include <sys/types.h>

#include <string>

#include "base/unique_fd.h"
#include "stats/segment_error.h"

namespace tcpfork::stats {

class SegmentLocator {
 public:
  // Where tcpfork-stats looks for the segment of `name`.
  static std::string path(const std::string& name);

  // What the file says of its master besides the segment: the pidfile it
  // holds and the config file it runs with, absolute (empty: none, or a path
  // with a newline, which the file cannot carry). A binary upgrade's new
  // master has the same two as the running one.
  struct Owner {
    std::string pidFile;
    std::string config;
  };

  // Takes the lock of `name`: opens or creates the file, never through a
  // symlink, and refuses one another user owns. Throws SegmentError naming
  // the running master when another one holds it.
  static SegmentLocator take(const std::string& name, Owner owner = {});
  // The lock a binary upgrade's new master inherits from the running one.
  static SegmentLocator adopt(const std::string& name, UniqueFd lock, Owner owner = {});

  SegmentLocator(SegmentLocator&&) noexcept = default;
  SegmentLocator& operator=(SegmentLocator&&) = delete;
  // Removes the file if it names this process or none, while still holding
  // the lock, so that no newcomer locks a file nobody can find.
  ~SegmentLocator();

  // Points readers at descriptor `segmentFd` of this process. Throws SegmentError.
  void publish(int segmentFd);
  int fd() const { return lock_.get(); }

  struct Where {
    pid_t pid;
    int fd;
    Owner owner;
  };
  // What the file of `name` says: a master killed outright leaves one that
  // names a dead pid. Throws SegmentError when there is none (no master of
  // that name runs) or it cannot be read. `awaitPublish`: a file that names
  // no master yet is read again for up to half a second (a master publishes
  // right after it takes the lock); without it, such a file fails at once,
  // for a caller that reads every instance's file (any user can make one).
  static Where find(const std::string& name, bool awaitPublish = true);

 private:
  SegmentLocator(std::string path, UniqueFd lock, Owner owner)
      : path_(std::move(path)), lock_(std::move(lock)), owner_(std::move(owner)) {}

  std::string path_;
  UniqueFd lock_;
  Owner owner_;
};

}  // namespace tcpfork::stats
