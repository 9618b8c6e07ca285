#include "contract/setting_values.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>

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

bool isAlpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
bool isDigit(char ch) { return ch >= '0' && ch <= '9'; }

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

uint64_t parseWholeNumber(const std::string& text, uint64_t min, uint64_t max) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw std::invalid_argument(fmt::format("expected a whole number, got '{}'", text));
  }
  if (value < min || value > max) throw std::invalid_argument(fmt::format("{} is out of range {}..{}", value, min, max));
  return value;
}

uint64_t parseBytes(const std::string& text, uint64_t min, uint64_t max) {
  uint64_t value = parseBytes(text);
  if (value < min || value > max) {
    throw std::invalid_argument(fmt::format("{} is out of range {}..{} bytes", text, min, max));
  }
  return value;
}

Millis parseDuration(const std::string& text, Millis min, Millis max) {
  Millis value = parseDuration(text);
  if (value < min || value > max) {
    throw std::invalid_argument(
        fmt::format("{} is out of range {}..{}", text, formatDuration(min), formatDuration(max)));
  }
  return value;
}

bool isLogLevel(std::string_view text) {
  for (std::string_view level : {"trace", "debug", "info", "warn", "error", "critical"}) {
    if (text == level) return true;
  }
  return false;
}

bool isShedMode(std::string_view text) { return text == "auto" || text == "on" || text == "off"; }

// Checked by hand, not with std::regex: see Scanner.
bool isInstanceName(std::string_view text) {
  if (text.empty() || text.size() > 64 || text[0] == '.' || text[0] == '-') return false;
  return std::all_of(text.begin(), text.end(),
                     [](char ch) { return isAlpha(ch) || isDigit(ch) || ch == '_' || ch == '.' || ch == '-'; });
}

}  // namespace tcpfork
