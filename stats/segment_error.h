#pragma once
// SegmentError: why the stats segment could not be created, found or
// attached, in words that name the segment, the file or the call.

#include <stdexcept>

namespace tcpfork::stats {

class SegmentError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace tcpfork::stats
