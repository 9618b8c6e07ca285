#pragma once
// The journal of one worker: requests become records in its own segment
// files, appended on the loop thread once per read batch, made durable by the
// syncer, acked after (fsync: always) or once written (interval, never).
//
// A record is acked as stored only while its file has a name (Segment::named,
// asked once per group commit or per write batch). A directory removed while
// in use (rm -rf) makes every request 'not stored' until a directory is at
// the configured path again: asked once a second, never made by the journal
// while it runs.
//
// A failed write (a full file system, say) answers its batch 'not stored' and
// the next batch tries again; Outage says when storing stopped and resumed.
// A failed fdatasync, or a failed write that could not be cut back, is not
// retried: every later request is answered 'not stored' and the worker stops
// itself gracefully (retire()), so that the master starts a fresh one.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <tcpfork/handler.h>

#include "base/unique_fd.h"
#include "handlers/journal/durable_mark_file.h"
#include "handlers/journal/options.h"
#include "handlers/journal/outage.h"
#include "handlers/journal/retention.h"
#include "handlers/journal/segment.h"
#include "handlers/journal/syncer.h"

namespace tcpfork::journal {

class Journal {
 public:
  // Recovers dead writers' segments; the first segment of its own comes
  // with the first record.
  // Throws with a message for init's err.
  Journal(const Options& options, tcpfork_host* host, const tcpfork_host_api* api);
  ~Journal();  // seals the open segment after the last sync
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  int handle(const tcpfork_request& request, tcpfork_pending* pending);
  void batchEnd();

 private:
  enum CounterId {
    kRecords,
    kBytes,
    kFsyncs,
    kFsyncNanoseconds,
    kTornTails,
    kTornBytes,
    kErrors,
    kSegmentsDeleted,
    kBytesDeleted,
    kNotStored,
    kCounterIds
  };

  void close();  // the destructor's work, which may throw
  void writeOut();
  bool rotate();  // false: no new segment (logged and counted)
  // The open segment has no name any more: left unsealed; a new one follows
  // a second later, unless the directory went with it.
  void dropUnnamedSegment(const std::string& why);
  bool directoryRemoved() const;  // the directory we hold has no name (st_nlink 0)
  void directoryGone(const std::string& why);
  // Opens the configured path again, if a directory is there; says so.
  bool reopenDirectory(std::chrono::steady_clock::time_point now);
  int notStored();  // kResultNotStored, counted (and while the directory is gone or in an outage)
  int refused();    // kResultNotStored, counted
  // Any thread, once: what this process writes can no longer be called
  // stored. SIGQUIT to the worker itself: it answers what it owes, drains
  // and exits, and the master starts a successor, whose recovery reads this
  // one's unsealed segments back.
  void retire(const std::string& why);
  void completeAll(std::vector<tcpfork_pending*>& tokens, uint8_t result);
  void publishSyncStats();
  // With retention configured: a pass after each rotation, and at least once
  // a second while requests come.
  void applyRetention();
  void log(int level, const std::string& message) const;
  void logError(const std::string& message);  // rate-limited

  const Options options_;
  tcpfork_host* const host_;
  const tcpfork_host_api* const api_;
  UniqueFd dir_;
  int counters_[kCounterIds];
  uint64_t startNs_ = 0;
  uint32_t sequence_ = 0;
  std::shared_ptr<Segment> segment_;
  // With a syncer: made in dir_ before the first segment there (again after
  // the directory came back), removed once the last one is sealed.
  std::shared_ptr<DurableMarkFile> mark_;
  std::unique_ptr<Syncer> syncer_;  // none with fsync: never
  std::vector<std::byte> buffer_;   // this batch's records, not yet written
  std::vector<tcpfork_pending*> tokens_;
  uint64_t records_ = 0;  // written by this worker, for the summary at exit
  uint64_t publishedFsyncs_ = 0;
  uint64_t publishedFsyncNanoseconds_ = 0;
  uint64_t publishedSyncErrors_ = 0;
  uint64_t publishedSyncNotStored_ = 0;
  bool broken_ = false;
  std::atomic<bool> retiring_{false};
  Outage outage_;
  std::unique_ptr<Retention> retention_;  // none without a retention bound
  uint32_t retainedAtSequence_ = 0;
  std::chrono::steady_clock::time_point nextRetentionPass_{};
  bool directoryGone_ = false;
  uint64_t notStoredWhileGone_ = 0;
  std::chrono::steady_clock::time_point goneSince_{};
  std::chrono::steady_clock::time_point lastGoneLog_{};
  std::chrono::steady_clock::time_point lastRotateErrorLog_{};
  std::chrono::steady_clock::time_point lastErrorLog_{};
  std::chrono::steady_clock::time_point nextRotateAttempt_{};
  uint64_t suppressedErrors_ = 0;
};

}  // namespace tcpfork::journal
