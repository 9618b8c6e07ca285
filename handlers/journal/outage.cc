#include "handlers/journal/outage.h"

namespace tcpfork::journal {

namespace {

std::string seconds(Outage::Clock::duration d) {
  auto tenths = std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " s";
}

}  // namespace

void Outage::failed(const std::string& error, uint64_t refused, Clock::time_point now) {
  if (!active_) {
    active_ = true;
    startSaid_ = false;
    since_ = now;
    refused_ = 0;
    firstError_ = error;
  }
  storing_ = false;
  refused_ += refused;
  if (now - lastLine_ < kOutageLogInterval) return;
  lastLine_ = now;
  if (startSaid_) {
    log_(3, "journal still not storing: " + error + "; " + std::to_string(refused_) +
                " requests answered 'not stored' in the " + seconds(now - since_) + " since it stopped");
    return;
  }
  startSaid_ = true;
  std::string earlier;
  if (unsaid_ > 0) {
    earlier = " (before this, " + std::to_string(unsaid_) + " brief stops since the last line, " +
              std::to_string(unsaidRefused_) + " requests answered 'not stored' in them)";
    unsaid_ = unsaidRefused_ = 0;
  }
  log_(3, "journal stopped storing" + (now - since_ >= std::chrono::seconds(1) ? " " + seconds(now - since_) + " ago" : "") +
              ": " + error +
              "; requests are answered 'not stored' until a write succeeds (tried again with each batch of requests, "
              "a new segment at most once a second; said again every " +
              std::to_string(kOutageLogInterval.count()) + " s while it lasts)" + earlier);
}

void Outage::stored(Clock::time_point now) {
  if (!active_ || storing_) return;
  storing_ = true;
  storingSince_ = now;
}

void Outage::tick(Clock::time_point now) {
  if (!active_ || !storing_ || now - storingSince_ < kOutageSettle) return;
  active_ = false;
  storing_ = false;
  if (!startSaid_) {
    ++unsaid_;
    unsaidRefused_ += refused_;
    return;
  }
  lastLine_ = now;
  log_(2, "journal stores again: " + std::to_string(refused_) + " requests were answered 'not stored' in the " +
              seconds(storingSince_ - since_) + " it could not store (" + firstError_ + ")");
}

}  // namespace tcpfork::journal
