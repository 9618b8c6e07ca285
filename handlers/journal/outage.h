#pragma once
// A spell of the journal not storing: a full file system, a write that
// fails, no segment that can be made. Said when it starts, every
// kOutageLogInterval while it lasts and when it ends, each time with how many
// requests were answered 'not stored' and for how long: a few lines for an
// outage however many requests it refuses. It ends once writes have
// succeeded for kOutageSettle with no failure between: a full disk takes a
// small write now and then (into the unused end of a file's last page), and
// that is not the end of it. An outage that starts sooner than an interval
// after the last line is said with the next one, and counted there.
// Owned by the Journal; loop thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace tcpfork::journal {

inline constexpr auto kOutageLogInterval = std::chrono::seconds(10);
inline constexpr auto kOutageSettle = std::chrono::seconds(1);

class Outage {
 public:
  using Clock = std::chrono::steady_clock;
  using Log = std::function<void(int level, const std::string&)>;

  explicit Outage(Log log) : log_(std::move(log)) {}

  bool active() const { return active_; }
  // `refused` requests were answered 'not stored' because of `error`;
  // starts an outage, or goes on with one.
  void failed(const std::string& error, uint64_t refused, Clock::time_point now);
  // A request answered 'not stored' during an outage, for its cause.
  void refused(uint64_t n) { refused_ += active_ ? n : 0; }
  // A write succeeded: an outage ends if no write fails for kOutageSettle.
  void stored(Clock::time_point now);
  // At each batch end: ends an outage that has settled.
  void tick(Clock::time_point now);

 private:
  const Log log_;
  bool active_ = false;
  bool startSaid_ = false;     // this outage's start is in the log
  bool storing_ = false;       // writes succeed again, since storingSince_
  Clock::time_point storingSince_{};
  Clock::time_point since_{};  // this outage's start
  Clock::time_point lastLine_{};
  uint64_t refused_ = 0;  // in this outage
  std::string firstError_;
  uint64_t unsaid_ = 0;         // outages that started and ended between two lines
  uint64_t unsaidRefused_ = 0;  // requests they answered 'not stored'
};

}  // namespace tcpfork::journal
