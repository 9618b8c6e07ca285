#include "contract/worker_setting_table.h"

#include <fmt/format.h>

#include <concepts>
#include <stdexcept>

#include "contract/setting_values.h"

namespace tcpfork {
namespace {

using namespace std::chrono_literals;

template <std::unsigned_integral T>
SettingValue toValue(T number) {
  return uint64_t{number};
}
SettingValue toValue(Millis duration) { return uint64_t(duration.count()); }
SettingValue toValue(const std::string& text) { return text; }
SettingValue toValue(ShedMode mode) {
  switch (mode) {
    case ShedMode::kOn: return std::string("on");
    case ShedMode::kOff: return std::string("off");
    case ShedMode::kAuto: break;
  }
  return std::string("auto");
}

template <std::unsigned_integral T>
void fromValue(const SettingValue& value, T& number) {
  number = T(std::get<uint64_t>(value));
}
void fromValue(const SettingValue& value, Millis& duration) { duration = Millis(std::get<uint64_t>(value)); }
void fromValue(const SettingValue& value, std::string& text) { text = std::get<std::string>(value); }
// Text that isShedMode() passed.
void fromValue(const SettingValue& value, ShedMode& mode) {
  const std::string& text = std::get<std::string>(value);
  mode = text == "on" ? ShedMode::kOn : text == "off" ? ShedMode::kOff : ShedMode::kAuto;
}

// The field at the end of `path`: field<&WorkerSettings::limits, &ConnectionLimits::idleTimeout>().
template <auto... path>
constexpr SettingField field() {
  return {[](const WorkerSettings& s) { return toValue((s .* ... .* path)); },
          [](WorkerSettings& s, const SettingValue& value) { fromValue(value, (s .* ... .* path)); }};
}

constexpr uint64_t ms(Millis duration) { return uint64_t(duration.count()); }
constexpr uint64_t kMaxU32 = 0xffffffff;

constexpr WorkerSetting kTable[] = {
    {.key = "max_connections", .flag = "--max-connections", .type = SettingType::kWholeNumber,
     .min = 1, .max = kMaxU32,
     .help = "close new connections beyond this many",
     .field = field<&WorkerSettings::maxConnections>()},
    {.key = "max_frame_bytes", .flag = "--max-frame-bytes", .type = SettingType::kBytes,
     .min = protocol::kMinRequestFrameBytes, .max = 0x7fffffff,  // totalLength is an int32
     .help = "largest frame accepted (totalLength)",
     .field = field<&WorkerSettings::limits, &ConnectionLimits::maxFrameBytes>()},
    {.key = "idle_timeout", .flag = "--idle-timeout", .type = SettingType::kDuration,
     .min = 0, .max = ms(24h),
     .help = "close a connection silent this long (0 = never)",
     .field = field<&WorkerSettings::limits, &ConnectionLimits::idleTimeout>()},
    // From 1 KiB: the low mark is half of it, and a connection must be able
    // to owe a few dozen acks (14 bytes each) before its reading pauses.
    {.key = "output_high_water", .flag = "--output-high-water", .type = SettingType::kBytes,
     .min = 1024, .max = kMaxU32,
     .help = "stop reading a connection with more unsent bytes than this",
     .field = field<&WorkerSettings::limits, &ConnectionLimits::outputHighWater>()},
    {.key = "max_buffered_bytes", .flag = "--max-buffered-bytes", .type = SettingType::kBytes,
     .min = 1, .max = uint64_t{1} << 40,
     .help = "close the connections holding the most once all of them hold more than this (unfinished frames "
             "and unsent acks)",
     .field = field<&WorkerSettings::maxBufferedBytes>()},
    {.key = "rlimit_nofile", .flag = "--rlimit-nofile", .type = SettingType::kWholeNumber,
     .min = 1024, .max = uint64_t{1} << 30, .optional = true,
     .help = "set RLIMIT_NOFILE (soft and hard) to this before serving",
     .field = field<&WorkerSettings::rlimitNofile>()},
    {.key = "drain_timeout", .flag = "--drain-timeout", .type = SettingType::kDuration,
     .min = 0, .max = ms(24h),
     .help = "graceful stop (SIGQUIT) closes what is left after this",
     .field = field<&WorkerSettings::drainTimeout>()},
    {.key = "log.level", .flag = "--log-level", .type = SettingType::kLogLevel, .masterOwns = true,
     .help = "trace, debug, info, warn, error, critical",
     .field = field<&WorkerSettings::logLevel>()},
    {.key = "log.file", .flag = "--log-file", .type = SettingType::kPath, .optional = true, .masterOwns = true,
     .help = "append logs here (reopened on SIGUSR1)",
     .field = field<&WorkerSettings::logFile>()},
    {.key = "name", .flag = "--name", .type = SettingType::kInstanceName, .masterOwns = true,
     .help = "instance name (profile file names)",
     .field = field<&WorkerSettings::name>()},
    // The master passes the directory it made from profile.dir (or its default).
    {.key = "profile.dir", .flag = "--profile-dir", .type = SettingType::kPath, .optional = true, .masterOwns = true,
     .help = "where SIGTRAP writes CPU profiles",
     .field = field<&WorkerSettings::profileDir>()},
    {.key = "profile.duration", .flag = "--profile-duration", .type = SettingType::kDuration,
     .min = ms(100ms), .max = ms(1h),
     .help = "a CPU profile stops by itself after this",
     .field = field<&WorkerSettings::profileDuration>()},
    {.key = "profile.heap_sample", .flag = "--profile-heap-sample", .type = SettingType::kBytes,
     .min = 0, .max = uint64_t{1} << 30,
     .help = "heap profiles sample one allocation per this many bytes allocated, on average (0 = none)",
     .field = field<&WorkerSettings::heapSample>()},
    {.key = "handler.module", .flag = "--handler-module", .type = SettingType::kModulePath, .optional = true,
     .help = "handler module (.so) to load; none = ack all",
     .field = field<&WorkerSettings::handler, &HandlerSettings::module>()},
    {.key = "handler.config", .flag = "--handler-config", .type = SettingType::kJson, .needs = "handler.module",
     .help = "the module's config, JSON text, given to its init",
     .field = field<&WorkerSettings::handler, &HandlerSettings::configJson>()},
    {.key = "handler.max_pending", .flag = "--handler-max-pending", .type = SettingType::kWholeNumber,
     .min = 1, .max = 1'000'000, .needs = "handler.module",
     .help = "stop reading a connection with more requests than this awaiting the module",
     .field = field<&WorkerSettings::handler, &HandlerSettings::maxPending>()},
    {.key = "handler.pending_timeout", .flag = "--handler-pending-timeout", .type = SettingType::kDuration,
     .min = 0, .max = ms(24h), .needs = "handler.module",
     .help = "close a connection whose pending requests have none completed for this long (0 = never)",
     .field = field<&WorkerSettings::handler, &HandlerSettings::pendingTimeout>()},
    {.key = "overload.shed", .flag = "--overload-shed", .type = SettingType::kShedMode,
     .help = "answer busy (255) to requests that queued too long while overloaded: auto (with a module), on, off",
     .field = field<&WorkerSettings::overload, &OverloadSettings::shed>()},
    // From 1 ms: the loop's own passes and a read's stamp are accurate to
    // well under that, and a shorter target would shed requests that only
    // met an ordinary loop pass. The config also holds it to the interval.
    {.key = "overload.target", .flag = "--overload-target", .type = SettingType::kDuration,
     .min = ms(1ms), .max = ms(10s),
     .help = "overloaded while the shortest queueing delay over the interval exceeds this",
     .field = field<&WorkerSettings::overload, &OverloadSettings::target>()},
    // From 10 ms: several loop passes, so that one slow pass is not an
    // overload; up to a minute, beyond which an overload is long noticed.
    {.key = "overload.interval", .flag = "--overload-interval", .type = SettingType::kDuration,
     .min = ms(10ms), .max = ms(60s),
     .help = "the window over which the shortest queueing delay is taken",
     .field = field<&WorkerSettings::overload, &OverloadSettings::interval>()},
};

}  // namespace

std::span<const WorkerSetting> workerSettingTable() { return kTable; }

const WorkerSetting& workerSetting(std::string_view key) {
  for (const WorkerSetting& setting : kTable) {
    if (setting.key == key) return setting;
  }
  throw std::logic_error(fmt::format("no worker setting '{}'", key));
}

SettingValue parseSetting(const WorkerSetting& setting, const std::string& text) {
  switch (setting.type) {
    case SettingType::kWholeNumber:
      return parseWholeNumber(text, setting.min, setting.max);
    case SettingType::kBytes:
      return parseBytes(text, setting.min, setting.max);
    case SettingType::kDuration:
      return ms(parseDuration(text, Millis(setting.min), Millis(setting.max)));
    case SettingType::kLogLevel:
      if (!isLogLevel(text)) throw std::invalid_argument(std::string(kLogLevelsExpected));
      return text;
    case SettingType::kShedMode:
      if (!isShedMode(text)) throw std::invalid_argument(std::string(kShedModesExpected));
      return text;
    case SettingType::kInstanceName:
      if (!isInstanceName(text)) {
        throw std::invalid_argument(fmt::format("'{}' is not an instance name: {}", text, kInstanceNameRule));
      }
      return text;
    case SettingType::kPath:
    case SettingType::kModulePath:
    case SettingType::kJson:
      return text;
  }
  throw std::logic_error("unknown SettingType");
}

std::string formatSetting(const WorkerSetting& setting, const SettingValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) return *text;
  uint64_t number = std::get<uint64_t>(value);
  return setting.type == SettingType::kDuration ? formatDuration(Millis(number)) : std::to_string(number);
}

}  // namespace tcpfork
