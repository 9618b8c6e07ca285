#pragma once
// tcpfork-journal follow: the records of a journal directory as a stream,
// per writer in the order written, across its rotations, while the workers
// write. Each poll() lists the directory and reads each writer's segments on
// from where it stopped; a record is printed only whole and checked (its
// CRCs), so a record being written, or a torn tail, is never printed: it
// waits for the next poll. Of a writer that syncs (it has a durable mark,
// format.h) an open segment is read only up to its mark: a record written
// but not yet synced waits too. A sealed segment is read whole (sealed only
// once synced). A segment deleted (retention) before it was read is skipped
// with a warning naming it. Runs in the tool's one thread.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "handlers/journal/format.h"
#include "handlers/journal/tool/cursor.h"
#include "handlers/journal/tool/scan.h"

namespace tcpfork::journal {

struct FollowOptions {
  enum class Start {
    kEnd,        // writers there at the first poll: only what they write from then on
    kFromStart,  // every record in the directory
  };
  std::string dir;
  Start start = Start::kEnd;
  uint64_t sinceNs = 0;  // records received before this are read but not printed
};

class Follower {
 public:
  using Print = std::function<void(const SegmentScan& segment, const Record& record)>;
  using Warn = std::function<void(const std::string& message)>;

  // `positions`: where a cursor says each writer got to. A writer not in
  // it starts as `options.start` says, or from its first segment when a
  // cursor was given (it began while no one followed).
  Follower(FollowOptions options, Positions positions, bool resumed, Print print, Warn warn);

  // Reads what is new in every writer's segments; the number of records
  // printed. Throws std::system_error when the directory cannot be listed.
  uint64_t poll();
  const Positions& positions() const { return positions_; }

 private:
  using Segments = std::map<uint32_t, std::string>;  // sequence -> file name
  // Reads one writer on from its position; records printed.
  uint64_t follow(const std::string& writer, const Segments& segments, WriterPosition& at);
  // Where reading the open segment `sequence` of `writer` stops: its
  // durable mark's say, or no limit for a writer without one.
  uint64_t readableEnd(const std::string& writer, uint32_t sequence);
  // The writer's durable mark, read once per poll (after the listing).
  std::optional<DurableMark> markOf(const std::string& writer);
  // On to the first segment after `at.sequence` there is (false when none),
  // warning when segments were skipped or `inTheMiddle` of one.
  bool moveOn(const std::string& writer, const Segments& segments, WriterPosition& at, bool inTheMiddle);
  void warnOnce(const std::string& key, const std::string& message);

  const FollowOptions options_;
  const bool resumed_;
  const Print print_;
  const Warn warn_;
  Positions positions_;
  bool firstPoll_ = true;
  std::set<std::string> warned_;
  std::map<std::string, std::optional<DurableMark>> marks_;  // this poll's
};

}  // namespace tcpfork::journal
