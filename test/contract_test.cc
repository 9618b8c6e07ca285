// The master-to-worker contract, driven by the table of worker settings: the
// table has a row for every field of WorkerSettings; every setting, at the
// ends of its range, comes back from toArgv through parseWorkerArgs; and the
// config file and the worker's command line refuse the same values. Bad
// command lines are refused.

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "contract/worker_setting_table.h"
#include "contract/worker_settings.h"
#include "master/config/config.h"

namespace tcpfork {
namespace {

// Every field of WorkerSettings, the nested structs opened, by position. A
// field added to WorkerSettings, ConnectionLimits or HandlerSettings stops
// this compiling until it is named here; the tests below then fail until
// the table has a row for it that toArgv and parseWorkerArgs carry.
auto fieldsOf(const WorkerSettings& s) {
  const auto& [maxConnections, limits, maxBufferedBytes, rlimitNofile, drainTimeout, logLevel, logFile, name,
               profileDir, profileDuration, heapSample, handler, overload] = s;
  const auto& [maxFrameBytes, idleTimeout, outputHighWater] = limits;
  const auto& [module, configJson, maxPending, pendingTimeout] = handler;
  const auto& [shed, target, interval] = overload;
  return std::tie(maxConnections, maxFrameBytes, idleTimeout, outputHighWater, maxBufferedBytes, rlimitNofile,
                  drainTimeout, logLevel, logFile, name, profileDir, profileDuration, heapSample, module, configJson,
                  maxPending, pendingTimeout, shed, target, interval);
}
constexpr size_t kFields = std::tuple_size_v<decltype(fieldsOf(WorkerSettings{}))>;

// The positions (in fieldsOf) of the fields that differ between `a` and `b`.
std::vector<size_t> differingFields(const WorkerSettings& a, const WorkerSettings& b) {
  auto fa = fieldsOf(a);
  auto fb = fieldsOf(b);
  std::vector<size_t> differing;
  [&]<size_t... i>(std::index_sequence<i...>) {
    ((std::get<i>(fa) != std::get<i>(fb) ? differing.push_back(i) : void()), ...);
  }(std::make_index_sequence<kFields>());
  return differing;
}

// A file named for this test process and `suffix`, holding `text`; removed
// when the process ends.
std::string tempFile(const std::string& suffix, const std::string& text) {
  struct File {
    std::string path;
    ~File() {
      if (!path.empty()) ::unlink(path.c_str());
    }
  };
  static std::map<std::string, File> files;
  File& file = files[suffix];
  file.path = "/tmp/tcpfork-contract-test-" + std::to_string(::getpid()) + suffix;
  std::ofstream(file.path) << text;
  return file.path;
}

// A module path the config reader accepts: any readable file (the master
// never opens a module; workers do).
std::string moduleFile() { return tempFile(".so", ""); }

// Values of `s` other than its default, within its range: the lowest and the
// highest for a number (the other end, twice, where one end is the default).
std::vector<SettingValue> samples(const WorkerSetting& s) {
  const SettingValue byDefault = s.field.get(WorkerSettings{});
  switch (s.type) {
    case SettingType::kWholeNumber:
    case SettingType::kBytes:
    case SettingType::kDuration: {
      std::vector<SettingValue> ends;
      for (uint64_t end : {s.min, s.max}) {
        if (SettingValue(end) != byDefault) ends.emplace_back(end);
      }
      return ends;
    }
    case SettingType::kLogLevel:
      return {std::string("trace"), std::string("critical")};
    case SettingType::kShedMode:
      return {std::string("on"), std::string("off")};
    case SettingType::kInstanceName:
      return {std::string("edge"), std::string("E.dge-2_") + std::string(56, 'x')};
    case SettingType::kPath:
      return {std::string("/var/lib/tcpfork/a path with spaces"), std::string("relative/p")};
    case SettingType::kModulePath:
      return {moduleFile()};
    case SettingType::kJson:
      return {std::string(R"({"dir":"/var/lib/tcpfork journal","fsync":"always","n":[1,2.5,true,null]})"),
              std::string("[]")};
  }
  return {};
}

// The `n`th sample of `s` (the last one when it has fewer).
SettingValue sample(const WorkerSetting& s, size_t n) {
  std::vector<SettingValue> values = samples(s);
  return values.at(std::min(n, values.size() - 1));
}

// Values of `s` both must refuse: a number just outside its range; for the
// rest, text that is not of its form.
std::vector<std::string> refused(const WorkerSetting& s) {
  std::vector<std::string> texts;
  switch (s.type) {
    case SettingType::kWholeNumber:
    case SettingType::kBytes:
    case SettingType::kDuration:
      if (s.min > 0) texts.push_back(formatSetting(s, s.min - 1));
      texts.push_back(formatSetting(s, s.max + 1));
      break;
    case SettingType::kLogLevel:
      texts = {"off", "verbose"};
      break;
    case SettingType::kShedMode:
      texts = {"yes", "true", "ON"};
      break;
    case SettingType::kInstanceName:
      texts = {"a/b", "..", std::string(65, 'x')};
      break;
    default:
      break;  // any text
  }
  return texts;
}

WorkerArgs roundTrip(const WorkerArgs& args) {
  std::vector<std::string> argv = {"tcpfork-worker"};
  for (auto& a : toArgv(args)) argv.push_back(a);
  return parseWorkerArgs(argv);
}

TEST(Contract, TheTableHasOneRowForEachFieldOfWorkerSettings) {
  const WorkerSettings defaults;
  std::span<const WorkerSetting> table = workerSettingTable();
  EXPECT_EQ(table.size(), kFields);
  std::map<size_t, std::string_view> fieldRow;  // field position -> key
  std::set<std::string_view> keys;
  for (const WorkerSetting& s : table) {
    EXPECT_TRUE(keys.insert(s.key).second) << s.key << " is in the table twice";
    ASSERT_FALSE(samples(s).empty()) << s.key;
    WorkerSettings set;
    s.field.set(set, sample(s, 0));
    EXPECT_EQ(s.field.get(set), sample(s, 0)) << s.key << ": its type does not hold its field's values";
    std::vector<size_t> differing = differingFields(set, defaults);
    ASSERT_EQ(differing.size(), 1u) << s.key << " must set exactly one field of WorkerSettings";
    auto [other, fresh] = fieldRow.emplace(differing[0], s.key);
    EXPECT_TRUE(fresh) << s.key << " and " << other->second << " set the same field";
  }
  EXPECT_EQ(fieldRow.size(), kFields) << "a field of WorkerSettings has no row in the table";
}

TEST(Contract, EachRowIsConsistent) {
  for (const WorkerSetting& s : workerSettingTable()) {
    // The flag is the key's name: handler.max_pending is --handler-max-pending.
    std::string flag = "--" + std::string(s.key);
    for (char& ch : flag) ch = ch == '.' || ch == '_' ? '-' : ch;
    EXPECT_EQ(s.flag, flag) << s.key;
    SettingValue byDefault = s.field.get(WorkerSettings{});
    if (const uint64_t* number = std::get_if<uint64_t>(&byDefault)) {
      EXPECT_LE(s.min, s.max) << s.key;
      EXPECT_LT(s.max, UINT64_MAX) << s.key << ": max + 1 must be a number";
      // A default outside the range is "not set", which only an optional setting has.
      EXPECT_TRUE(s.optional || (*number >= s.min && *number <= s.max)) << s.key << ": default out of range";
    } else {
      EXPECT_EQ(s.min, 0u) << s.key << ": a range on text";
      EXPECT_EQ(s.max, 0u) << s.key << ": a range on text";
    }
    if (!s.needs.empty()) {
      EXPECT_TRUE(workerSetting(s.needs).optional) << s.key << " needs " << s.needs;
    }
    // Its default reads back as itself, unless it means "not set".
    if (!s.optional) {
      EXPECT_EQ(parseSetting(s, formatSetting(s, byDefault)), byDefault) << s.key;
    }
  }
}

// Each setting at the low end of its range, then at the high end: a field
// that toArgv leaves out or parseWorkerArgs does not read comes back as its
// default, which no sample is.
TEST(Contract, EverySettingSurvivesTheCommandLine) {
  for (size_t n : {size_t{0}, size_t{1}}) {
    WorkerArgs a;
    a.listenFds = {5};
    for (const WorkerSetting& s : workerSettingTable()) s.field.set(a.settings, sample(s, n));
    if (n == 0) {
      EXPECT_EQ(differingFields(a.settings, WorkerSettings{}).size(), kFields) << "a sample is a default";
    }
    WorkerArgs back = roundTrip(a);
    for (const WorkerSetting& s : workerSettingTable()) {
      EXPECT_EQ(s.field.get(back.settings), s.field.get(a.settings))
          << s.key << " (" << s.flag << ") did not come back from the command line";
    }
    EXPECT_TRUE(back == a);  // and the process's own fields
  }
}

// The command line's own fields, which say where one process stands.
TEST(Contract, EveryProcessFieldSurvivesTheCommandLine) {
  WorkerArgs a;
  a.role = "worker.3";
  a.index = 3;
  a.generation = 7;
  a.cpu = 1;
  a.statsFd = 7;
  a.slot = 12;
  a.parentPid = 4242;
  a.listenFds = {5, 6};
  a.settings.handler.module = moduleFile();
  a.checkHandler = true;
  EXPECT_EQ(roundTrip(a), a);
  WorkerArgs standalone;
  standalone.listen = "127.0.0.1:0";
  standalone.noStats = true;
  EXPECT_EQ(roundTrip(standalone), standalone);
  // And nothing else: a field added to WorkerArgs stops this compiling.
  [[maybe_unused]] const auto& [settings, role, index, generation, cpu, statsFd, slot, parentPid, listenFds, listen,
                                noStats, checkHandler] = a;
}

TEST(Contract, DefaultsAreTheWorkersOwn) {
  WorkerArgs a;
  a.listen = "127.0.0.1:0";
  EXPECT_EQ(roundTrip(a), a);
  EXPECT_EQ(parseWorkerArgs({"tcpfork-worker", "--listen", "127.0.0.1:0"}).settings, WorkerSettings{});
  EXPECT_EQ(WorkerSettings{}.limits.outputLowWater(), WorkerSettings{}.limits.outputHighWater / 2);
  // The config's defaults are the contract's.
  EXPECT_EQ(loadConfig("").worker, WorkerSettings{});
}

// What `key: text` in the config file is refused with ("" when it is not),
// with what the key needs (a handler module) beside it.
std::string configRefusal(const WorkerSetting& s, const std::string& text) {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> sections;  // parent -> name: value
  auto add = [&](std::string_view key, const std::string& value) {
    size_t dot = key.rfind('.');
    std::string parent(dot == std::string_view::npos ? "" : key.substr(0, dot));
    sections[parent].emplace_back(key.substr(dot == std::string_view::npos ? 0 : dot + 1), value);
  };
  if (!s.needs.empty()) add(s.needs, formatSetting(workerSetting(s.needs), sample(workerSetting(s.needs), 0)));
  add(s.key, text);
  std::string yaml;
  for (const auto& [parent, entries] : sections) {
    if (!parent.empty()) yaml += parent + ":\n";
    for (const auto& [name, value] : entries) yaml += (parent.empty() ? "" : "  ") + name + ": \"" + value + "\"\n";
  }
  try {
    loadConfig(tempFile(".yaml", yaml));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// What the worker's command line with `flag text` is refused with ("" when
// it is not).
std::string commandLineRefusal(const WorkerSetting& s, const std::string& text) {
  std::vector<std::string> argv = {"tcpfork-worker", "--listen-fd", "3", std::string(s.flag), text};
  if (!s.needs.empty()) {
    const WorkerSetting& needed = workerSetting(s.needs);
    argv.insert(argv.end(), {std::string(needed.flag), formatSetting(needed, sample(needed, 0))});
  }
  try {
    parseWorkerArgs(argv);
  } catch (const WorkerArgsError& e) {
    return e.err();
  }
  return "";
}

TEST(Contract, TheConfigFileAndTheCommandLineRefuseTheSameValues) {
  for (const WorkerSetting& s : workerSettingTable()) {
    for (const std::string& text : refused(s)) {
      std::string why;
      try {
        parseSetting(s, text);
      } catch (const std::invalid_argument& e) {
        why = e.what();
      }
      ASSERT_FALSE(why.empty()) << s.key << ": " << text << " is not refused by parseSetting";
      // FILE:LINE: key: why, and --flag: why.
      std::string fromFile = configRefusal(s, text);
      EXPECT_NE(fromFile.find(": " + std::string(s.key) + ": " + why), std::string::npos)
          << s.key << ": " << text << " is not refused as " << why << " by the config reader: " << fromFile;
      std::string fromFlag = commandLineRefusal(s, text);
      EXPECT_NE(fromFlag.find(std::string(s.flag) + ": " + why), std::string::npos)
          << s.flag << " " << text << " is not refused as " << why << ": " << fromFlag;
    }
    for (const SettingValue& value : samples(s)) {
      std::string text = formatSetting(s, value);
      if (s.type == SettingType::kJson) continue;  // the file gives YAML, not JSON text
      EXPECT_EQ(commandLineRefusal(s, text), "") << s.flag << " " << text;
      // The file may refuse it only for what it is compared with (max_buffered_bytes at least
      // max_frame_bytes + output_high_water, ...), never for itself.
      std::string fromFile = configRefusal(s, text);
      EXPECT_EQ(fromFile.find(": " + std::string(s.key) + ": " + text + " is out of range"), std::string::npos)
          << fromFile;
      EXPECT_EQ(fromFile.find(": expected"), std::string::npos) << fromFile;
      EXPECT_EQ(fromFile.find("unknown key"), std::string::npos) << s.key << " is not read from the config file";
    }
  }
}

TEST(Contract, RefusesABadCommandLine) {
  auto codeOf = [](std::vector<std::string> argv) {
    try {
      parseWorkerArgs(argv);
    } catch (const WorkerArgsError& e) {
      return e.exitCode();
    }
    return -1;
  };
  EXPECT_GT(codeOf({"tcpfork-worker"}), 0) << "needs --listen or --listen-fd";
  EXPECT_GT(codeOf({"tcpfork-worker", "--listen", "127.0.0.1:1", "--listen-fd", "3"}), 0);
  EXPECT_GT(codeOf({"tcpfork-worker", "--listen-fd", "3", "--stats-fd", "4"}), 0) << "--stats-fd needs --slot";
  EXPECT_GT(codeOf({"tcpfork-worker", "--listen-fd", "3", "--handler-max-pending", "5"}), 0)
      << "--handler-max-pending needs --handler-module";
  EXPECT_GT(codeOf({"tcpfork-worker", "--listen-fd", "3", "--idle-timeout", "soon"}), 0);
  EXPECT_EQ(codeOf({"tcpfork-worker", "--help"}), 0);
}

}  // namespace
}  // namespace tcpfork
