#pragma once
// The worker settings, each declared once (worker_setting_table.cc): for
// every field of WorkerSettings its config key, its tcpfork-worker flag, the
// form of its value, its range and its help line. The config reader
// (master/config/config.cc) reads the keys by it, toArgv writes the flags by
// it and parseWorkerArgs reads them back by it, all through parseSetting, so
// that the file and the command line accept and refuse the same values.
// test/contract_test.cc holds the table to every field of WorkerSettings.
// Start-up code only: a worker's loop reads the WorkerSettings it filled.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "contract/worker_settings.h"

namespace tcpfork {

// How a value is written, in the config file and on the command line alike.
enum class SettingType {
  kWholeNumber,   // 10000
  kBytes,         // 67108864, or with a unit: 512KiB, 64MiB, 2GiB
  kDuration,      // 250ms, 30s, 5m, 1h; a bare number is seconds
  kLogLevel,      // isLogLevel()
  kShedMode,      // isShedMode(): auto, on, off
  kInstanceName,  // isInstanceName()
  kPath,          // any text
  // A handler module's .so: the config reader also makes it absolute against
  // the config file's directory and checks that it is a readable file.
  kModulePath,
  // JSON text; the config file gives any YAML, written out as JSON (yaml_json.h).
  kJson,
};

// A value as the table moves it: a number (durations in milliseconds) or text.
using SettingValue = std::variant<uint64_t, std::string>;

// Reads and writes one field of WorkerSettings as a SettingValue.
struct SettingField {
  SettingValue (*get)(const WorkerSettings&);
  void (*set)(WorkerSettings&, const SettingValue&);
};

struct WorkerSetting {
  std::string_view key;   // in the config file, dotted: "handler.max_pending"
  std::string_view flag;  // on tcpfork-worker's command line: "--handler-max-pending"
  SettingType type;
  // Numbers: the range, both ends included (durations in milliseconds).
  uint64_t min = 0;
  uint64_t max = 0;
  // Its default means "not set" (rlimit_nofile's 0, an empty path): toArgv
  // writes it only when set. Others are always written, so the master's
  // values, not the worker binary's defaults, are what a worker runs with.
  bool optional = false;
  // The key of the setting it means nothing without: toArgv writes it only
  // with that one, and the worker refuses it alone.
  std::string_view needs = {};
  // The master runs with this key too, in a field of Config's own (name,
  // log.*, profile.dir): config.cc's walk reads it there (checked by
  // parseSetting all the same) and Master::settingsFrom copies it into each
  // generation's WorkerSettings.
  bool masterOwns = false;
  std::string_view help;  // for tcpfork-worker --help
  SettingField field;
};

// Every worker setting, in the order of WorkerSettings.
std::span<const WorkerSetting> workerSettingTable();
// The row of `key`; throws std::logic_error when there is none.
const WorkerSetting& workerSetting(std::string_view key);

// The value `text` gives `setting`. Throws std::invalid_argument with the
// reason ("0 is out of range 1..4294967295").
SettingValue parseSetting(const WorkerSetting& setting, const std::string& text);
// The text parseSetting reads back as `value`: "65536", "250ms", "10s".
std::string formatSetting(const WorkerSetting& setting, const SettingValue& value);

}  // namespace tcpfork
