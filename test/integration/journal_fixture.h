#pragma once
// What the journal module's integration tests share: a config naming the
// module, the journal read back through tcpfork-journal cat --json, and a
// pipelined load that records which IDs were acked as stored.

#include <atomic>
#include <sys/types.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tcpfork::test {

std::string journalModule();

// A handler section loading the journal with `dir` and `more` config keys.
std::string journalYaml(const std::string& dir, const std::string& more = "");

// The 8-byte ID of request n, as text.
std::string idText(uint64_t n);

// Every record of a journal directory, through tcpfork-journal cat --json.
struct JournalContents {
  std::vector<nlohmann::json> records;
  std::multiset<std::string> ids;
  int exitCode = -1;
  std::string output;
};
JournalContents readJournal(const std::string& dir);

// Names of the files in `dir` ending in `suffix`, sorted.
std::vector<std::string> filesIn(const std::string& dir, std::string_view suffix);

// Pipelined Submits on `connections` connections, each from a thread: a burst
// of unique IDs, then its acks, checked; a connection that dies is replaced.
// Records every ID that was acked with result 0 (stored), and counts those
// acked with 1 (not stored), after which a connection backs off for 1 ms as
// a client would. IDs are handed out in increasing order, so nextId() taken
// at some moment splits the requests sent before it from those after.
class JournalLoad {
 public:
  // Payloads are "p<ID>", padded with x to `payloadBytes`; IDs start at `firstId`.
  JournalLoad(int port, int connections, uint64_t burst, size_t payloadBytes = 0, uint64_t firstId = 1);
  ~JournalLoad() { stop(); }
  JournalLoad(const JournalLoad&) = delete;
  JournalLoad& operator=(const JournalLoad&) = delete;

  void stop();
  uint64_t acked() const { return acked_.load(); }
  uint64_t ackedOnLostConnections() const { return ackedOnLost_.load(); }
  int lostConnections() const { return lost_.load(); }
  int wrongAcks() const { return wrong_.load(); }
  uint64_t notStored() const { return notStored_.load(); }
  uint64_t nextId() const { return next_.load(); }
  std::vector<uint64_t> ackedIds() {
    std::lock_guard lock(mutex_);
    return ids_;
  }
  // From now on, acks for IDs sent from now on are counted apart too.
  void mark() { mark_ = next_.load(); }
  uint64_t ackedSinceMark() const { return ackedSinceMark_.load(); }
  uint64_t notStoredSinceMark() const { return notStoredSinceMark_.load(); }

 private:
  void run();
  std::string payload(uint64_t n) const;

  const int port_;
  const uint64_t burst_;
  const size_t payloadBytes_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> next_;
  std::atomic<uint64_t> acked_{0};
  std::atomic<uint64_t> ackedOnLost_{0};
  std::atomic<int> lost_{0};
  std::atomic<int> wrong_{0};
  std::atomic<uint64_t> notStored_{0};
  std::atomic<uint64_t> mark_{std::numeric_limits<uint64_t>::max()};
  std::atomic<uint64_t> ackedSinceMark_{0};
  std::atomic<uint64_t> notStoredSinceMark_{0};
  std::mutex mutex_;
  std::vector<uint64_t> ids_;
  std::vector<std::thread> threads_;
};

// The environment of the master started while it lives (its workers inherit
// it): test/journal_faults/journal_faults.c preloaded, failing (or holding)
// the calls `control` names on files under `dir`. The test process itself is
// not touched.
class PreloadedFaults {
 public:
  PreloadedFaults(const std::string& dir, const std::string& control);
  ~PreloadedFaults() { restore(); }
  PreloadedFaults(const PreloadedFaults&) = delete;
  PreloadedFaults& operator=(const PreloadedFaults&) = delete;

  // Once the master has started: nothing else the test runs is preloaded.
  void restore();
  // "pwrite", "fdatasync", "holdsync", or "" for none.
  void arm(const std::string& calls);

 private:
  void set(const std::string& name, const std::string& value);
  std::string control_;
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Checks that every ID in `acked` is in `journal`; returns how many are
// not (and names the first ten as failures).
size_t expectAllInJournal(const std::vector<uint64_t>& acked, const JournalContents& journal);

// User and system CPU a process has used, in seconds (0 when it is gone).
double cpuSeconds(pid_t pid);

}  // namespace tcpfork::test
