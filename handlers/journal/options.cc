#include "handlers/journal/options.h"

#include <cmath>
#include <regex>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace tcpfork::journal {

namespace {

constexpr uint64_t kMinSegmentBytes = 64 << 10;
constexpr uint64_t kMaxSegmentBytes = 1ull << 40;
constexpr uint64_t kMinRetainedBytes = 64 << 10;
constexpr uint64_t kMaxRetainedBytes = 1ull << 50;
constexpr int64_t kMaxAgeSeconds = 100ll * 365 * 86400;
constexpr std::chrono::milliseconds kMaxInterval{60'000};

[[noreturn]] void fail(const std::string& key, const std::string& why) { throw std::invalid_argument(key + ": " + why); }

// 250ms, 1s, 0.5s, or a number of seconds.
std::chrono::milliseconds duration(const nlohmann::json& value, const std::string& key) {
  double ms = 0;
  if (value.is_number()) {
    ms = value.get<double>() * 1e3;
  } else if (value.is_string()) {
    static const std::regex kForm(R"(\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*)");
    std::smatch m;
    std::string text = value.get<std::string>();
    if (!std::regex_match(text, m, kForm)) fail(key, "expected a duration like 100ms or 1s, got '" + text + "'");
    ms = std::stod(m[1].str()) * (m[2].matched && m[2].str() == "ms" ? 1 : 1e3);
  } else {
    fail(key, "expected a duration like 100ms or 1s");
  }
  if (!(ms >= 1 && ms <= double(kMaxInterval.count()))) fail(key, "must be from 1ms to 60s");
  return std::chrono::milliseconds(std::llround(ms));
}

// 4096, 64KiB, 64MiB, 1GiB, 2TiB, within [min, max] (`range` says it).
uint64_t bytes(const nlohmann::json& value, const std::string& key, uint64_t min, uint64_t max,
               const std::string& range) {
  double n = 0;
  if (value.is_number_unsigned() || value.is_number_integer()) {
    n = value.get<double>();
  } else if (value.is_string()) {
    static const std::regex kForm(R"(\s*([0-9]+)\s*(KiB|MiB|GiB|TiB)?\s*)");
    std::smatch m;
    std::string text = value.get<std::string>();
    if (!std::regex_match(text, m, kForm)) fail(key, "expected a size like 65536, 64KiB, 64MiB or 1GiB, got '" + text + "'");
    std::string unit = m[2].matched ? m[2].str() : "";
    double scale = unit.empty() ? 1 : unit == "KiB" ? 0x1p10 : unit == "MiB" ? 0x1p20 : unit == "GiB" ? 0x1p30 : 0x1p40;
    n = std::stod(m[1].str()) * scale;
  } else {
    fail(key, "expected a size like 64MiB");
  }
  if (!(n >= double(min) && n <= double(max))) fail(key, "must be from " + range);
  return uint64_t(n);
}

// 90s, 30m, 12h, 7d, or a number of seconds.
std::chrono::seconds age(const nlohmann::json& value, const std::string& key) {
  double s = 0;
  if (value.is_number()) {
    s = value.get<double>();
  } else if (value.is_string()) {
    static const std::regex kForm(R"(\s*([0-9]+)\s*(s|m|h|d)?\s*)");
    std::smatch m;
    std::string text = value.get<std::string>();
    if (!std::regex_match(text, m, kForm)) fail(key, "expected an age like 90s, 30m, 12h or 7d, got '" + text + "'");
    std::string unit = m[2].matched ? m[2].str() : "s";
    s = std::stod(m[1].str()) * (unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 86400);
  } else {
    fail(key, "expected an age like 7d");
  }
  if (!(s >= 1 && s <= double(kMaxAgeSeconds))) fail(key, "must be from 1s to 100 years");
  return std::chrono::seconds(std::llround(s));
}

RetentionOptions retention(const nlohmann::json& value) {
  if (!value.is_object()) fail("retention", "expected a mapping with max_bytes, max_age or both");
  RetentionOptions options;
  for (const auto& [key, field] : value.items()) {
    if (key == "max_bytes") {
      options.maxBytes = bytes(field, "retention.max_bytes", kMinRetainedBytes, kMaxRetainedBytes, "64KiB to 1PiB");
    } else if (key == "max_age") {
      options.maxAge = age(field, "retention.max_age");
    } else {
      fail("retention." + key, "unknown key (known: max_bytes, max_age)");
    }
  }
  if (!options.any()) fail("retention", "expected max_bytes, max_age or both");
  return options;
}

}  // namespace

const char* name(FsyncMode mode) {
  switch (mode) {
    case FsyncMode::kAlways:
      return "always";
    case FsyncMode::kInterval:
      return "interval";
    case FsyncMode::kNever:
      return "never";
  }
  return "?";
}

Options parseOptions(const std::string& configJson) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(configJson);
  } catch (const nlohmann::json::exception& e) {
    fail("handler.config", std::string("not JSON: ") + e.what());
  }
  if (config.is_null()) fail("dir", "required (the directory the segment files go to)");
  if (!config.is_object()) fail("handler.config", "expected a mapping with at least dir");
  Options options;
  bool intervalGiven = false;
  for (const auto& [key, value] : config.items()) {
    if (key == "dir") {
      if (!value.is_string() || value.get<std::string>().empty()) fail(key, "expected a directory path");
      options.dir = value.get<std::string>();
      if (options.dir[0] != '/') fail(key, "must be an absolute path, got '" + options.dir + "'");
    } else if (key == "fsync") {
      std::string mode = value.is_string() ? value.get<std::string>() : "";
      if (mode == "always") {
        options.fsync = FsyncMode::kAlways;
      } else if (mode == "interval") {
        options.fsync = FsyncMode::kInterval;
      } else if (mode == "never") {
        options.fsync = FsyncMode::kNever;
      } else {
        fail(key, "expected always, interval or never, got " + value.dump());
      }
    } else if (key == "fsync_interval") {
      options.fsyncInterval = duration(value, key);
      intervalGiven = true;
    } else if (key == "segment_bytes") {
      options.segmentBytes = bytes(value, key, kMinSegmentBytes, kMaxSegmentBytes, "64KiB to 1TiB");
    } else if (key == "retention") {
      options.retention = retention(value);
    } else {
      fail(key, "unknown key (known: dir, fsync, fsync_interval, segment_bytes, retention)");
    }
  }
  if (options.dir.empty()) fail("dir", "required (the directory the segment files go to)");
  if (intervalGiven && options.fsync != FsyncMode::kInterval) fail("fsync_interval", "is for fsync: interval only");
  return options;
}

}  // namespace tcpfork::journal
