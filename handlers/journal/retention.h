#pragma once
// What a journal directory keeps. A pass lists every worker's segments in
// the directory and deletes sealed ones, oldest first (by when each was last
// written, its mtime), while the segments together exceed max_bytes or the
// oldest was last written more than max_age ago. A segment still being
// written (.journal.open) is never deleted, nor counted out: it counts
// towards max_bytes, so the directory holds at most max_bytes plus what is
// written between passes. Workers run passes on their own and may race to
// delete the same file: the one whose unlink succeeds counts it.
//
// No reader is asked: a `tcpfork-journal follow` that lags by more than the
// bound finds its next segment gone and says how far it skipped.
//
// Owned by the Journal; runs on the loop thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "handlers/journal/options.h"

namespace tcpfork::journal {

struct RetentionPass {
  uint64_t segmentsDeleted = 0;
  uint64_t bytesDeleted = 0;
  uint64_t bytesLeft = 0;  // every segment's size after the pass
};

class Retention {
 public:
  using Log = std::function<void(int level, const std::string&)>;

  Retention(RetentionOptions options, Log log) : options_(options), log_(std::move(log)) {}

  // One pass over `dirFd` (named `dir` in logs), as of `now`. A bound that
  // open segments alone exceed is logged once per process.
  RetentionPass run(int dirFd, const std::string& dir, std::chrono::system_clock::time_point now);

 private:
  const RetentionOptions options_;
  const Log log_;
  bool saidUnkept_ = false;
  std::chrono::steady_clock::time_point lastErrorLog_{};
};

}  // namespace tcpfork::journal
