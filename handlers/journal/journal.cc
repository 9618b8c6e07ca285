#include "handlers/journal/journal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "handlers/journal/recovery.h"
#include "handlers/journal/segment_files.h"

namespace tcpfork::journal {

namespace {

// A batch's records are written at batch end, or sooner once this many
// bytes wait (a read of many large frames).
constexpr size_t kWriteAtBytes = 1 << 20;
constexpr auto kErrorLogInterval = std::chrono::seconds(1);
// While the directory is gone it is looked for each second (with the
// rotation retries), and said again this often.
constexpr auto kGoneLogInterval = std::chrono::seconds(10);
// A rotation that keeps failing while writing goes on in the open segment
// is retried each second and said this often: on a full disk the outage's
// own lines (Outage) are saying it too.
constexpr auto kRotateErrorLogInterval = std::chrono::seconds(10);
// Retention runs after each rotation, and this often besides (max_age, and
// other workers' segments) while requests come.
constexpr auto kRetentionInterval = std::chrono::seconds(1);

uint64_t unixNanoseconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

}  // namespace

Journal::Journal(const Options& options, tcpfork_host* host, const tcpfork_host_api* api)
    : options_(options), host_(host), api_(api), outage_([this](int level, const std::string& m) { log(level, m); }) {
  struct Declared {
    CounterId id;
    const char* name;
    const char* help;
  };
  static constexpr Declared kCounters[] = {
      {kRecords, "journal_records", "Records the journal wrote."},
      {kBytes, "journal_bytes", "Bytes of records the journal wrote."},
      {kFsyncs, "journal_fsyncs", "fdatasync calls the journal made (each covers every record written before it)."},
      {kFsyncNanoseconds, "journal_fsync_nanoseconds", "Time spent in the journal's fdatasync calls."},
      {kTornTails, "journal_torn_tails", "Torn segment tails found and truncated at start."},
      {kTornBytes, "journal_torn_bytes", "Bytes cut off torn segment tails at start."},
      {kErrors, "journal_errors",
       "Writes, syncs and segment creations that failed, and open segments found deleted (alone or with the "
       "directory)."},
      {kSegmentsDeleted, "journal_segments_deleted", "Sealed segments retention deleted."},
      {kBytesDeleted, "journal_bytes_deleted", "Bytes of the sealed segments retention deleted."},
      {kNotStored, "journal_not_stored", "Requests answered 1 (not stored)."},
  };
  for (const Declared& c : kCounters) counters_[c.id] = api_->counter(host_, c.name, c.help);

  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) throw std::runtime_error("dir: cannot create " + options_.dir + ": " + ec.message());
  dir_.reset(::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_) throw std::runtime_error("dir: " + options_.dir + ": " + std::strerror(errno));
  if (::faccessat(dir_.get(), ".", W_OK, AT_EACCESS) != 0) {
    throw std::runtime_error("dir: " + options_.dir + " is not writable: " + std::strerror(errno));
  }
  {
    RecoveryReport report =
        recoverDeadSegments(dir_.get(), options_.dir, [this](int level, const std::string& m) { log(level, m); });
    api_->add(host_, counters_[kTornTails], report.tornTails);
    api_->add(host_, counters_[kTornBytes], report.tornBytes);
    if (report.segments > 0) {
      log(1, "recovered " + std::to_string(report.segments) + (report.segments == 1 ? " segment" : " segments") +
                 " left open by workers that died or stopped after a failed sync (" +
                 std::to_string(report.tornTails) + " torn tails, " + std::to_string(report.tornBytes) +
                 " bytes cut off)");
    }
    // The first segment is made at the first record, so that a worker that
    // gets none (and tcpfork -t, which runs init) leaves no empty file; the
    // file system is asked now whether it can make one.
    std::string probe = ".probe-" + std::to_string(::getpid());
    try {
      Segment::create(dir_.get(), options_.dir, probe, SegmentHeader{});
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("dir: ") + e.what());
    }
    ::unlinkat(dir_.get(), probe.c_str(), 0);
  }
  startNs_ = unixNanoseconds();
  if (options_.retention.any()) {
    retention_ = std::make_unique<Retention>(options_.retention, [this](int level, const std::string& m) { log(level, m); });
  }
  if (options_.fsync != FsyncMode::kNever) {
    syncer_ = std::make_unique<Syncer>(
        options_.fsync, options_.fsyncInterval, api_->complete, [this](int level, const std::string& m) { log(level, m); },
        [this] { retire("an fdatasync failed"); });
  }
  log(1, "journal in " + options_.dir + " (fsync: " + name(options_.fsync) + ", segments of " +
             std::to_string(options_.segmentBytes) + " bytes)");
}

Journal::~Journal() {
  try {
    close();
  } catch (const std::exception& e) {
    log(3, std::string("closing the journal: ") + e.what());
  }
}

void Journal::close() {
  writeOut();  // nothing is left unwritten after a batch; this is for certainty
  std::shared_ptr<Segment> last = std::move(segment_);
  if (last && broken_) {
    log(2, last->path() + ": not sealed: it may end in a partial record; left open for the recovery of the next "
                          "worker to cut back");
    last.reset();
  }
  if (syncer_) {
    if (last) syncer_->submit(last, {}, true);
    syncer_->stop();
    publishSyncStats();
    // Each segment was synced before it was sealed. After a failure the mark
    // stays, at the last good sync, until the next worker's recovery has
    // synced and sealed what this one left open.
    if (mark_ && !broken_ && !syncer_->failed()) mark_->remove();
  } else if (last) {
    std::string error;
    if (!last->seal(false, error)) log(2, error);
  }
  last.reset();
  // How well group commit grouped: what an operator tuning fsync wants.
  std::string summary = "closed: " + std::to_string(records_) + " records in " + std::to_string(sequence_) + " segments";
  if (syncer_) {
    uint64_t fsyncs = syncer_->stats().fsyncs.load();
    uint64_t nanoseconds = syncer_->stats().fsyncNanoseconds.load();
    char figures[160];
    std::snprintf(figures, sizeof figures, ", %llu fsyncs (%.1f records per fsync, %.0f us per fsync)",
                  static_cast<unsigned long long>(fsyncs), fsyncs ? double(records_) / double(fsyncs) : 0.0,
                  fsyncs ? double(nanoseconds) / double(fsyncs) / 1e3 : 0.0);
    summary += figures;
  }
  log(1, summary);
  syncer_.reset();
}

void Journal::log(int level, const std::string& message) const { api_->log(host_, level, message.c_str()); }

void Journal::logError(const std::string& message) {
  auto now = std::chrono::steady_clock::now();
  if (now - lastErrorLog_ < kErrorLogInterval) {
    ++suppressedErrors_;
    return;
  }
  std::string suffix =
      suppressedErrors_ ? " (" + std::to_string(suppressedErrors_) + " more errors in the last second, not logged)" : "";
  lastErrorLog_ = now;
  suppressedErrors_ = 0;
  log(3, message + suffix);
}

int Journal::handle(const tcpfork_request& request, tcpfork_pending* pending) {
  if (request.command != TCPFORK_SUBMIT) return kResultOk;  // Conn passes through
  if (broken_ || (syncer_ && syncer_->failed())) return refused();
  if (!segment_ && !rotate()) return notStored();
  size_t bytes = recordBytes(request.payload_len);
  uint64_t after = segment_->size() + buffer_.size() + bytes;
  if (after > options_.segmentBytes && (segment_->hasRecords() || !buffer_.empty())) {
    writeOut();
    if (broken_) return refused();
    // writeOut may have started a fresh segment already, or lost the directory.
    if (!segment_ || segment_->hasRecords()) rotate();
    if (!segment_) return notStored();
  }
  // Either both the record and its token are queued, or neither.
  size_t before = buffer_.size();
  try {
    appendRecord(buffer_, request.id, unixNanoseconds(), request.payload, request.payload_len);
    tokens_.push_back(pending);
  } catch (const std::bad_alloc&) {
    buffer_.resize(before);
    return refused();
  }
  // From here the token is ours to complete: an exception is logged, and the
  // answer still comes through complete().
  try {
    if (buffer_.size() >= kWriteAtBytes) writeOut();
  } catch (const std::exception& e) {
    log(3, std::string("writing records: ") + e.what());
  }
  return TCPFORK_PENDING;
}

void Journal::batchEnd() {
  writeOut();
  outage_.tick(std::chrono::steady_clock::now());
  publishSyncStats();
  applyRetention();
}

void Journal::applyRetention() {
  if (!retention_ || directoryGone_) return;
  auto now = std::chrono::steady_clock::now();
  if (sequence_ == retainedAtSequence_ && now < nextRetentionPass_) return;
  retainedAtSequence_ = sequence_;
  nextRetentionPass_ = now + kRetentionInterval;
  RetentionPass pass = retention_->run(dir_.get(), options_.dir, std::chrono::system_clock::now());
  api_->add(host_, counters_[kSegmentsDeleted], pass.segmentsDeleted);
  api_->add(host_, counters_[kBytesDeleted], pass.bytesDeleted);
}

void Journal::completeAll(std::vector<tcpfork_pending*>& tokens, uint8_t result) {
  if (result == kResultNotStored) api_->add(host_, counters_[kNotStored], tokens.size());
  for (tcpfork_pending* token : tokens) api_->complete(token, result);
  tokens.clear();
}

void Journal::writeOut() {
  if (buffer_.empty()) return;
  // The syncer found the file without a name after its last sync (fsync:
  // always): it takes no more records.
  if (segment_ && segment_->unnamed()) dropUnnamedSegment(segment_->path() + ": deleted while open");
  std::string error;
  if (!segment_ || !segment_->append(buffer_, error)) {
    if (directoryGone_) notStoredWhileGone_ += tokens_.size();
    // No segment: it was found deleted just now, and dropUnnamedSegment said so.
    if (segment_) {
      api_->add(host_, counters_[kErrors], 1);
      if (segment_->broken()) {
        broken_ = true;
        logError(error + "; " + std::to_string(tokens_.size()) +
                 " requests answered 'not stored', and every later one (the segment may end in a partial record)");
        retire("a failed write could not be cut back");
      } else {
        outage_.failed(error, tokens_.size(), std::chrono::steady_clock::now());
      }
    }
    completeAll(tokens_, kResultNotStored);
    buffer_.clear();
    return;
  }
  // Acked below, before any sync (interval, never): so the name is asked
  // now, one fstat per batch. With always the syncer asks after its sync.
  if (options_.fsync != FsyncMode::kAlways && !segment_->named(error)) {
    api_->add(host_, counters_[kErrors], 1);
    std::string answered =
        "; the " + std::to_string(tokens_.size()) + " requests just written to it are answered 'not stored'";
    completeAll(tokens_, kResultNotStored);
    buffer_.clear();
    dropUnnamedSegment(error + answered);
    return;
  }
  outage_.stored(std::chrono::steady_clock::now());
  records_ += tokens_.size();
  api_->add(host_, counters_[kRecords], tokens_.size());
  api_->add(host_, counters_[kBytes], buffer_.size());
  buffer_.clear();
  if (options_.fsync == FsyncMode::kAlways) {
    syncer_->submit(segment_, std::move(tokens_));
    tokens_.clear();
    return;
  }
  completeAll(tokens_, kResultOk);
  if (syncer_) syncer_->submit(segment_, {});
}

bool Journal::rotate() {
  // A file system refusing new files is asked again once a second, not on
  // every request.
  auto now = std::chrono::steady_clock::now();
  if (now < nextRotateAttempt_) return false;
  if (directoryGone_ && !reopenDirectory(now)) return false;
  SegmentHeader header{unixNanoseconds(), api_->worker_index, api_->generation, uint32_t(::getpid())};
  std::string name = segmentName(api_->worker_index, startNs_, uint32_t(::getpid()), sequence_ + 1);
  std::shared_ptr<Segment> next;
  try {
    // Before the segment has a name: a reader that sees it sees the mark.
    if (syncer_ && !mark_) {
      mark_ = DurableMarkFile::create(dir_.get(), options_.dir,
                                      durableMarkName(writerName(api_->worker_index, startNs_, uint32_t(::getpid()))));
    }
    next = Segment::create(dir_.get(), options_.dir, name, header, sequence_ + 1, mark_);
  } catch (const std::exception& e) {
    nextRotateAttempt_ = now + kErrorLogInterval;
    api_->add(host_, counters_[kErrors], 1);
    // In a removed directory no file can be made (EPERM, ENOENT), and the
    // open segment, whose name was in it, has none left.
    if (directoryRemoved()) {
      directoryGone(e.what());
      return false;
    }
    if (segment_) {
      if (now - lastRotateErrorLog_ >= kRotateErrorLogInterval) {
        lastRotateErrorLog_ = now;
        logError(std::string(e.what()) + "; writing on in " + segment_->path() + " past segment_bytes");
      }
    } else {
      outage_.failed(e.what(), 0, now);
    }
    return false;
  }
  ++sequence_;
  std::shared_ptr<Segment> done = std::exchange(segment_, std::move(next));
  if (!done) return true;
  if (syncer_) {
    syncer_->submit(std::move(done), {}, true);
  } else {
    std::string error;
    if (!done->seal(false, error)) log(2, error);
  }
  return true;
}

void Journal::dropUnnamedSegment(const std::string& why) {
  // Not sealed: whatever has its name now is not this file.
  segment_.reset();
  if (directoryRemoved()) {
    directoryGone(why);
    return;
  }
  // The directory is still there: one file deleted, or an rm -rf of the
  // directory under way. A new segment made at once could make that rm fail
  // (directory not empty), so it comes after the usual second.
  nextRotateAttempt_ = std::chrono::steady_clock::now() + kErrorLogInterval;
  logError(why + "; so are later requests until a new segment is started, a second from now");
}

bool Journal::directoryRemoved() const {
  struct stat st {};
  return ::fstat(dir_.get(), &st) == 0 && st.st_nlink == 0;
}

int Journal::notStored() {
  if (directoryGone_) ++notStoredWhileGone_;
  outage_.refused(1);
  return refused();
}

int Journal::refused() {
  api_->add(host_, counters_[kNotStored], 1);
  return kResultNotStored;
}

void Journal::retire(const std::string& why) {
  if (retiring_.exchange(true)) return;
  log(3, "journal: " + why + ": what this worker writes can no longer be called stored, so it answers 'not stored' "
             "to every request and stops (a graceful stop, as on SIGQUIT); the master starts a new worker, whose "
             "recovery reads this one's unsealed segments back");
  ::kill(::getpid(), SIGQUIT);
}

void Journal::directoryGone(const std::string& why) {
  segment_.reset();  // not sealed: it has no name to seal (see dropUnnamedSegment)
  mark_.reset();     // gone with the directory: the next one gets its own
  if (directoryGone_) return;
  auto now = std::chrono::steady_clock::now();
  directoryGone_ = true;
  goneSince_ = lastGoneLog_ = now;
  notStoredWhileGone_ = 0;
  nextRotateAttempt_ = now + kErrorLogInterval;
  log(3, "journal directory " + options_.dir + " is gone (removed while in use: " + why +
             "): requests are answered 'not stored' until it is there again (looked for each second; the journal "
             "does not make it while it runs)");
}

bool Journal::reopenDirectory(std::chrono::steady_clock::time_point now) {
  UniqueFd dir(::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto gone = std::chrono::duration_cast<std::chrono::seconds>(now - goneSince_).count();
  if (!dir) {
    int e = errno;
    nextRotateAttempt_ = now + kErrorLogInterval;
    if (now - lastGoneLog_ >= kGoneLogInterval) {
      lastGoneLog_ = now;
      log(3, "journal directory " + options_.dir + " is still gone (" + std::strerror(e) + "): " +
                 std::to_string(notStoredWhileGone_) + " requests answered 'not stored' in the " +
                 std::to_string(gone) + " s since it went");
    }
    return false;
  }
  // Segments of the old directory hold their own descriptor of it.
  dir_ = std::move(dir);
  directoryGone_ = false;
  log(2, "journal directory " + options_.dir + " is back: journaling resumes in it (" +
             std::to_string(notStoredWhileGone_) + " requests were answered 'not stored' in the " +
             std::to_string(gone) + " s it was gone)");
  return true;
}

void Journal::publishSyncStats() {
  if (!syncer_) return;
  // The syncer's thread may not call add(): its figures are published from
  // the loop, at each batch end.
  const SyncStats& stats = syncer_->stats();
  uint64_t fsyncs = stats.fsyncs.load(std::memory_order_relaxed);
  uint64_t nanoseconds = stats.fsyncNanoseconds.load(std::memory_order_relaxed);
  uint64_t errors = stats.errors.load(std::memory_order_relaxed);
  uint64_t notStored = stats.notStored.load(std::memory_order_relaxed);
  api_->add(host_, counters_[kFsyncs], fsyncs - publishedFsyncs_);
  api_->add(host_, counters_[kFsyncNanoseconds], nanoseconds - publishedFsyncNanoseconds_);
  api_->add(host_, counters_[kErrors], errors - publishedSyncErrors_);
  api_->add(host_, counters_[kNotStored], notStored - publishedSyncNotStored_);
  publishedSyncNotStored_ = notStored;
  publishedFsyncs_ = fsyncs;
  publishedFsyncNanoseconds_ = nanoseconds;
  publishedSyncErrors_ = errors;
}

}  // namespace tcpfork::journal
