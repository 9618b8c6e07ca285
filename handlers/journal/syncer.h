#pragma once
// The journal's own thread: fdatasync off the loop. With fsync: always it is
// group commit: one fdatasync covers every batch written before it, and the
// acks of those batches are completed after it. With fsync: interval it syncs
// what was written at most every fsync_interval and completes nothing. After
// each sync that succeeded it moves the segment's durable mark to the end
// of what was written before the sync began (Segment::markDurable).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "handlers/journal/options.h"
#include "handlers/journal/segment.h"

struct tcpfork_pending;

namespace tcpfork::journal {

inline constexpr uint8_t kResultOk = 0;
inline constexpr uint8_t kResultNotStored = 1;  // the SubmitAck result when a record could not be made durable

struct SyncStats {
  std::atomic<uint64_t> fsyncs{0};
  std::atomic<uint64_t> fsyncNanoseconds{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> notStored{0};  // requests completed with kResultNotStored
};

class Syncer {
 public:
  using Complete = void (*)(tcpfork_pending*, uint8_t);
  using Log = std::function<void(int level, const std::string&)>;  // called from the syncer's thread
  using Failed = std::function<void()>;  // called from the syncer's thread, once, at the first failure

  Syncer(FsyncMode mode, std::chrono::milliseconds interval, Complete complete, Log log, Failed failed);
  ~Syncer();  // stop()
  // Syncs, completes and seals what is queued, then joins; stats() stay.
  void stop();
  Syncer(const Syncer&) = delete;
  Syncer& operator=(const Syncer&) = delete;

  // Loop thread: `tokens` (maybe none) were written to `segment`, which now
  // holds segment->size() bytes; `seal` once nothing more will be.
  void submit(std::shared_ptr<Segment> segment, std::vector<tcpfork_pending*> tokens, bool seal = false);

  const SyncStats& stats() const { return stats_; }
  // A sync failed: after a failed fdatasync what the page cache holds is
  // unknown (a later one may succeed without writing it), so nothing stored
  // from now on may be called durable, and no segment is sealed: each is
  // left open for the recovery of the worker that comes next.
  bool failed() const { return failed_.load(std::memory_order_acquire); }

 private:
  struct Batch {
    std::shared_ptr<Segment> segment;
    std::vector<tcpfork_pending*> tokens;
    bool seal = false;
    uint64_t end = 0;  // the segment's size once the batch was written
  };

  void run();
  void process(std::vector<Batch>& work);
  // Marks the syncer failed; true the first time, after `onFailed_`.
  bool fail();

  const FsyncMode mode_;
  const std::chrono::milliseconds interval_;
  const Complete complete_;
  const Log log_;
  const Failed onFailed_;
  SyncStats stats_;
  std::atomic<bool> failed_{false};

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Batch> queue_;
  bool sealQueued_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace tcpfork::journal
