#pragma once
// HeaderLock: mutual exclusion between the masters that write one segment's
// Header and slot ownership. Normally there is one master and the lock is
// never contended; during a binary upgrade the old and the new master share
// the segment and both fold exited workers into the retired totals.
//
// The lock word holds the writer's pid. Critical sections are a few dozen
// stores, so waiters spin (yielding); a lock held by a dead process (a master
// killed mid-fold), or held for over a second (a master stopped mid-fold, or
// a pid the workers' user wrote into the word), is taken over rather than
// waited on forever.
// Used on a master's loop; never from a signal handler.

#include "stats/layout.h"

namespace tcpfork::stats {

class HeaderLock {
 public:
  explicit HeaderLock(Header& header);
  ~HeaderLock();
  HeaderLock(const HeaderLock&) = delete;
  HeaderLock& operator=(const HeaderLock&) = delete;

 private:
  Header& header_;
  uint64_t self_;
};

}  // namespace tcpfork::stats
