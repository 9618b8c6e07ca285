#include "handlers/journal/options.h"

#include <cmath>
#include <regex>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace tcpfork::journal {

namespace {

constexpr uint64_t kMinSegmentBytes = 64 << 10;
constexpr uint64_t kMaxSegmentBytes = 1ull << 40;
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

// 4096, 64KiB, 64MiB, 1GiB.
uint64_t bytes(const nlohmann::json& value, const std::string& key) {
  double n = 0;
  if (value.is_number_unsigned() || value.is_number_integer()) {
    n = value.get<double>();
  } else if (value.is_string()) {
    static const std::regex kForm(R"(\s*([0-9]+)\s*(KiB|MiB|GiB)?\s*)");
    std::smatch m;
    std::string text = value.get<std::string>();
    if (!std::regex_match(text, m, kForm)) fail(key, "expected a size like 65536, 64KiB, 64MiB or 1GiB, got '" + text + "'");
    double unit = !m[2].matched ? 1 : m[2].str() == "KiB" ? 1024.0 : m[2].str() == "MiB" ? 1048576.0 : 1073741824.0;
    n = std::stod(m[1].str()) * unit;
  } else {
    fail(key, "expected a size like 64MiB");
  }
  if (!(n >= double(kMinSegmentBytes) && n <= double(kMaxSegmentBytes))) fail(key, "must be from 64KiB to 1TiB");
  return uint64_t(n);
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
      options.segmentBytes = bytes(value, key);
    } else {
      fail(key, "unknown key (known: dir, fsync, fsync_interval, segment_bytes)");
    }
  }
  if (options.dir.empty()) fail("dir", "required (the directory the segment files go to)");
  if (intervalGiven && options.fsync != FsyncMode::kInterval) fail("fsync_interval", "is for fsync: interval only");
  return options;
}

}  // namespace tcpfork::journal
