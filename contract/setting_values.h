#pragma once
// The forms a setting's value takes, read the same way from the config file
// (master/config/) and from tcpfork-worker's command line (worker_settings.cc),
// so that both accept and refuse the same text with the same reason. Each
// parse throws std::invalid_argument whose message is that reason, as the
// config reader prints it after "FILE:LINE: key: " and the worker after
// "--flag: ". Pure functions, linked by both binaries.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace tcpfork {

using Millis = std::chrono::milliseconds;

// "1048576", "512KiB", "64MiB", "2GiB" (also K, M, G, all powers of 1024) as
// bytes.
uint64_t parseBytes(const std::string& text);
// "250ms", "30s", "5m", "1h"; a bare number is seconds.
Millis parseDuration(const std::string& text);
// The inverse, in the largest unit that is exact: "250ms", "10s", "24h".
std::string formatDuration(Millis duration);

// The same, within [min, max]: "0 is out of range 1..4294967295".
uint64_t parseWholeNumber(const std::string& text, uint64_t min, uint64_t max);
uint64_t parseBytes(const std::string& text, uint64_t min, uint64_t max);
Millis parseDuration(const std::string& text, Millis min, Millis max);

// log.level and --log-level: spdlog's names, but not "off": the master logs
// at the same level, and a master that logs nothing hides why its workers
// fail.
bool isLogLevel(std::string_view text);
inline constexpr std::string_view kLogLevelsExpected = "expected one of trace, debug, info, warn, error, critical";

// overload.shed and --overload-shed: auto, on or off.
bool isShedMode(std::string_view text);
inline constexpr std::string_view kShedModesExpected = "expected auto, on or off";

// An instance name: [A-Za-z0-9_.-]{1,64}, not starting with a dot or a dash.
// It goes into paths (/dev/shm/<name>.stats, /run/<name>.pid,
// /tmp/<name>_profile, profile file names) and on command lines
// (tcpfork-stats --name <name>), so "." and ".." are not names either.
bool isInstanceName(std::string_view text);
inline constexpr std::string_view kInstanceNameRule =
    "use 1-64 of A-Z a-z 0-9 _ . -, starting with a letter, digit or _";

}  // namespace tcpfork
