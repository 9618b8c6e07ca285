// The values config keys take, and the machine facts their defaults depend
// on: byte sizes, durations, the CPUs this process may use. Declared in
// config.h.
#include <sched.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <string_view>
#include <stdexcept>

#include "master/config/config.h"

namespace tcpfork {

namespace {

// The forms below are scanned by hand, not with std::regex: it recurses once
// per character, and a value of some 10,000 spaces or digits overflows the
// stack.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  void skipSpace() {
    auto space = [](char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); };  // \t \n \v \f \r
    while (i_ < text_.size() && space(text_[i_])) ++i_;
  }
  // Takes the longest run of digits; its text (empty: none).
  std::string_view digits() {
    size_t start = i_;
    while (i_ < text_.size() && text_[i_] >= '0' && text_[i_] <= '9') ++i_;
    return text_.substr(start, i_ - start);
  }
  // Takes `word` if the text goes on with it.
  bool take(std::string_view word) {
    if (text_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  // Takes the first of `words` the text goes on with (list longer ones
  // first); its text, or empty.
  std::string_view takeAny(std::initializer_list<std::string_view> words) {
    for (std::string_view word : words) {
      if (take(word)) return word;
    }
    return {};
  }
  bool atEnd() const { return i_ == text_.size(); }

 private:
  std::string_view text_;
  size_t i_ = 0;
};

}  // namespace

uint64_t parseBytes(const std::string& text) {
  // \s*([0-9]{1,19})\s*(K|M|G|KiB|MiB|GiB)?\s*
  Scanner scan(text);
  scan.skipSpace();
  std::string_view number = scan.digits();
  scan.skipSpace();
  std::string_view unit = scan.takeAny({"KiB", "MiB", "GiB", "K", "M", "G"});
  scan.skipSpace();
  if (number.empty() || number.size() > 19 || !scan.atEnd()) {
    throw std::invalid_argument(fmt::format("expected bytes like 1048576, 512KiB, 64MiB or 2GiB, got '{}'", text));
  }
  uint64_t value = std::stoull(std::string(number));
  unsigned shift = 0;
  if (!unit.empty()) shift = unit[0] == 'K' ? 10 : unit[0] == 'M' ? 20 : 30;
  if (value > (~uint64_t{0} >> shift)) throw std::invalid_argument(fmt::format("'{}' is too large", text));
  return value << shift;
}

Millis parseDuration(const std::string& text) {
  // \s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*
  Scanner scan(text);
  scan.skipSpace();
  std::string number(scan.digits());
  bool valid = !number.empty();
  if (valid && scan.take(".")) {
    std::string_view fraction = scan.digits();
    valid = !fraction.empty();
    number += "." + std::string(fraction);
  }
  scan.skipSpace();
  std::string_view unitText = scan.takeAny({"ms", "s", "m", "h"});
  scan.skipSpace();
  if (!valid || !scan.atEnd()) {
    throw std::invalid_argument(fmt::format("expected a duration like 250ms, 30s, 5m or 1h, got '{}'", text));
  }
  // strtod, not stod: out of range it gives HUGE_VAL or 0 instead of throwing.
  double value = std::strtod(number.c_str(), nullptr);
  std::string unit = unitText.empty() ? "s" : std::string(unitText);
  double ms = unit == "ms" ? value : unit == "s" ? value * 1e3 : unit == "m" ? value * 60e3 : value * 3600e3;
  // Past this llround is undefined; every key's own ceiling is far below it.
  constexpr double kLargest = 1e15;  // about 31,000 years
  if (!(ms <= kLargest)) throw std::invalid_argument(fmt::format("'{}' is too long a duration", text));
  return Millis(std::llround(ms));
}

std::string formatDuration(Millis d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

unsigned usableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? unsigned(n) : 1;
}

std::vector<unsigned> usableCpus() {
  cpu_set_t set;
  std::vector<unsigned> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

std::vector<int> workerCpus(const CpuAffinity& affinity) {
  std::vector<int> out;
  if (affinity.mode == CpuAffinity::Mode::kNone) return out;
  const std::vector<unsigned> cpus = affinity.mode == CpuAffinity::Mode::kAuto ? usableCpus() : affinity.cpus;
  for (unsigned cpu : cpus) out.push_back(int(cpu));
  return out;
}

}  // namespace tcpfork
