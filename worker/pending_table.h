#pragma once
// PendingTable: the worker's requests that a handler answers later, by
// token. A token is a serial number, never reused in the process, so a
// completion finds its connection and its place in that connection's acks,
// or is known to belong to a connection that has closed (dropped and
// counted), or to nothing (completed twice: logged and ignored).

#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace tcpfork {

class Connection;

class PendingTable {
 public:
  struct Entry {
    Connection* connection;
    uint64_t sequence;  // the ack's place among its connection's held acks
  };
  enum class Found { kLive, kOrphan, kUnknown };

  // One token per request (an unused one costs nothing): the handler may
  // keep it. Tokens first + 1 .. first + n, for a run of up to n requests:
  // one update per run instead of one per request.
  uint64_t reserveTokens(uint64_t n) { return std::exchange(lastToken_, lastToken_ + n); }
  void add(uint64_t token, Connection* connection, uint64_t sequence) { live_.emplace(token, Entry{connection, sequence}); }
  // Its connection has closed: a later completion is dropped.
  void orphan(uint64_t token) {
    live_.erase(token);
    orphans_.insert(token);
  }
  // Removes and returns what `token` was.
  Found take(uint64_t token, Entry& entry) {
    if (auto it = live_.find(token); it != live_.end()) {
      entry = it->second;
      live_.erase(it);
      return Found::kLive;
    }
    return orphans_.erase(token) > 0 ? Found::kOrphan : Found::kUnknown;
  }
  size_t live() const { return live_.size(); }
  // What its entries take of the heap, orphans included (which only their
  // completion frees): a hash node each (key, entry, next pointer, and the
  // allocator's header, rounded up) and a bucket pointer.
  size_t memoryBytes() const {
    return (live_.size() + orphans_.size()) * kNodeBytes + (live_.bucket_count() + orphans_.bucket_count()) * sizeof(void*);
  }

 private:
  static constexpr size_t kNodeBytes = 48;
  uint64_t lastToken_ = 0;  // tokens start at 1: a null tcpfork_pending* is never one
  std::unordered_map<uint64_t, Entry> live_;
  std::unordered_set<uint64_t> orphans_;
};

}  // namespace tcpfork
