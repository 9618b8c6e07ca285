#include "handlers/journal/syncer.h"

#include <algorithm>

namespace tcpfork::journal {

Syncer::Syncer(FsyncMode mode, std::chrono::milliseconds interval, Complete complete, Log log, Failed failed)
    : mode_(mode),
      interval_(interval),
      complete_(complete),
      log_(std::move(log)),
      onFailed_(std::move(failed)),
      thread_([this] { run(); }) {}

bool Syncer::fail() {
  if (failed_.exchange(true)) return false;
  if (onFailed_) onFailed_();
  return true;
}

Syncer::~Syncer() { stop(); }

void Syncer::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Syncer::submit(std::shared_ptr<Segment> segment, std::vector<tcpfork_pending*> tokens, bool seal) {
  bool wake = false;
  const uint64_t end = segment->size();
  try {
    std::lock_guard lock(mutex_);
    // Interval: one entry per segment to sync is enough.
    if (tokens.empty() && !seal && !queue_.empty() && queue_.back().segment == segment && !queue_.back().seal) {
      queue_.back().end = end;
      return;
    }
    wake = mode_ == FsyncMode::kAlways ? queue_.empty() : seal;
    sealQueued_ = sealQueued_ || seal;
    queue_.push_back({segment, tokens, seal, end});
  } catch (const std::bad_alloc&) {
    // Not queued, so no sync will cover them: say so rather than never.
    for (tcpfork_pending* token : tokens) complete_(token, kResultNotStored);
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
    stats_.notStored.fetch_add(tokens.size(), std::memory_order_relaxed);
    return;
  }
  // Always: the first batch after a sync wakes the thread; the ones written
  // while it syncs join the next group without a wake-up of their own.
  if (wake) wake_.notify_one();
}

void Syncer::run() {
  auto nextSync = std::chrono::steady_clock::now() + interval_;
  std::unique_lock lock(mutex_);
  for (;;) {
    if (mode_ == FsyncMode::kAlways) {
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    } else {
      wake_.wait_until(lock, nextSync, [&] { return stopping_ || sealQueued_; });
    }
    if (queue_.empty()) {
      if (stopping_) return;
      nextSync = std::chrono::steady_clock::now() + interval_;
      continue;
    }
    std::vector<Batch> work;
    work.swap(queue_);
    sealQueued_ = false;
    lock.unlock();
    try {
      process(work);
    } catch (const std::exception& e) {
      // Only allocation throws here. The thread goes on; requests of the
      // group not yet completed stay unanswered until their connections close.
      log_(3, std::string("journal sync thread: ") + e.what() + "; every later request is answered 'not stored'");
      fail();
    }
    work.clear();  // drops segment references off the lock
    lock.lock();
    nextSync = std::chrono::steady_clock::now() + interval_;
  }
}

void Syncer::process(std::vector<Batch>& work) {
  // One fdatasync per segment covers every batch written to it before now;
  // segments come in the order written, a rotation's old one first.
  std::vector<Segment*> segments;
  std::vector<uint64_t> ends;  // what each segment's sync covers at least
  for (const Batch& batch : work) {
    auto at = std::find(segments.begin(), segments.end(), batch.segment.get());
    if (at == segments.end()) {
      segments.push_back(batch.segment.get());
      ends.push_back(batch.end);
    } else {
      uint64_t& end = ends[size_t(at - segments.begin())];
      end = std::max(end, batch.end);
    }
  }
  // Sticky: once a sync has failed, a later one on the same file can succeed
  // without the lost pages, so nothing written after a failure is called stored.
  const bool failedEarlier = failed_.load(std::memory_order_acquire);
  std::vector<Segment*> failedSegments;
  // fsync: always. Synced but without a name (deleted while open, alone or
  // with its directory): its records go when the file is closed, so they are
  // not stored. Not sticky: the loop moves on to a new segment. (With
  // interval and never the loop asks before each ack.)
  std::vector<Segment*> unnamedSegments;
  for (size_t i = 0; i < segments.size(); ++i) {
    Segment* segment = segments[i];
    auto start = std::chrono::steady_clock::now();
    std::string error;
    bool ok = segment->sync(error);
    auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
    stats_.fsyncs.fetch_add(1, std::memory_order_relaxed);
    stats_.fsyncNanoseconds.fetch_add(uint64_t(took.count()), std::memory_order_relaxed);
    if (!ok) {
      stats_.errors.fetch_add(1, std::memory_order_relaxed);
      failedSegments.push_back(segment);
      if (!failed_.load(std::memory_order_acquire)) {
        log_(3, error + (mode_ == FsyncMode::kAlways
                             ? "; the requests it covered are answered 'not stored', and so is every later one"
                             : "; records acked since the last good sync may be lost, and every later request is "
                               "answered 'not stored'"));
        fail();
      }
      continue;
    }
    if (mode_ == FsyncMode::kAlways) {
      // After the fdatasync: a name lost before it or during it is seen here.
      bool wasUnnamed = segment->unnamed();
      if (!segment->named(error)) {
        unnamedSegments.push_back(segment);
        if (!wasUnnamed) {
          stats_.errors.fetch_add(1, std::memory_order_relaxed);
          log_(3, error + "; the requests written to it since its last sync are answered 'not stored'");
        }
        continue;
      }
    }
    // Never past a failure, this sync's or an earlier one's: what was
    // written after it is not known to be on disk.
    if (failed_.load(std::memory_order_acquire)) continue;
    if (std::string said = segment->markDurable(ends[i]); !said.empty()) log_(2, said);
  }
  auto in = [](const std::vector<Segment*>& list, const Segment* segment) {
    return std::find(list.begin(), list.end(), segment) != list.end();
  };
  for (Batch& batch : work) {
    const Segment* segment = batch.segment.get();
    bool stored = !failedEarlier && !in(failedSegments, segment) && !in(unnamedSegments, segment);
    for (tcpfork_pending* token : batch.tokens) complete_(token, stored ? kResultOk : kResultNotStored);
    if (!stored) stats_.notStored.fetch_add(batch.tokens.size(), std::memory_order_relaxed);
  }
  for (Batch& batch : work) {
    if (!batch.seal) continue;
    std::string error;
    if (failed_.load(std::memory_order_acquire)) {
      // What the file holds past its last good sync is unknown: the next
      // worker's recovery reads it back, record by record, once our lock
      // on it is gone.
      log_(2, batch.segment->path() + ": not sealed after a failed sync; left open for the recovery of the next "
                                      "worker to check");
      continue;
    }
    // An unnamed segment was said above; there is no file to seal.
    if (!batch.segment->unnamed() && !batch.segment->seal(true, error)) log_(2, error);
  }
}

}  // namespace tcpfork::journal
