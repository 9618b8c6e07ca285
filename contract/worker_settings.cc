#include "contract/worker_settings.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sstream>

#include "base/version.h"
#include "contract/setting_values.h"
#include "contract/worker_setting_table.h"

namespace tcpfork {
namespace {

// Whether toArgv writes `setting`: an optional one only when set, and none
// without the setting it needs.
bool written(const WorkerSetting& setting, const WorkerSettings& s) {
  const WorkerSettings defaults;
  if (setting.optional && setting.field.get(s) == setting.field.get(defaults)) return false;
  return setting.needs.empty() || written(workerSetting(setting.needs), s);
}

// What --help shows after the flag: "N:1..4294967295", "DURATION:0ms..24h".
std::string typeName(const WorkerSetting& setting) {
  auto range = [&](const char* name) {
    return fmt::format("{}:{}..{}", name, formatSetting(setting, setting.min), formatSetting(setting, setting.max));
  };
  switch (setting.type) {
    case SettingType::kWholeNumber: return range("N");
    case SettingType::kBytes: return range("BYTES");
    case SettingType::kDuration: return range("DURATION");
    case SettingType::kLogLevel: return "LEVEL";
    case SettingType::kShedMode: return "auto|on|off";
    case SettingType::kInstanceName: return "NAME";
    case SettingType::kPath:
    case SettingType::kModulePath: return "PATH";
    case SettingType::kJson: return "JSON";
  }
  return "TEXT";
}

// Refuses what parseSetting refuses, with its reason: "--max-connections: 0
// is out of range 1..4294967295".
CLI::Validator checkOf(const WorkerSetting& setting) {
  return CLI::Validator(
      [&setting](std::string& text) {
        try {
          parseSetting(setting, text);
        } catch (const std::invalid_argument& e) {
          return std::string(e.what());
        }
        return std::string();
      },
      "");
}

}  // namespace

std::vector<std::string> toArgv(const WorkerArgs& a) {
  std::vector<std::string> argv = {"--role", a.role, "--index", std::to_string(a.index), "--generation",
                                   std::to_string(a.generation)};
  for (const WorkerSetting& setting : workerSettingTable()) {
    if (written(setting, a.settings)) {
      argv.insert(argv.end(), {std::string(setting.flag), formatSetting(setting, setting.field.get(a.settings))});
    }
  }
  if (a.cpu >= 0) argv.insert(argv.end(), {"--cpu", std::to_string(a.cpu)});
  if (a.statsFd >= 0) argv.insert(argv.end(), {"--stats-fd", std::to_string(a.statsFd), "--slot", std::to_string(a.slot)});
  if (a.parentPid > 0) argv.insert(argv.end(), {"--parent-pid", std::to_string(a.parentPid)});
  for (int fd : a.listenFds) argv.insert(argv.end(), {"--listen-fd", std::to_string(fd)});
  if (!a.listen.empty()) argv.insert(argv.end(), {"--listen", a.listen});
  if (a.noStats) argv.push_back("--no-stats");
  if (a.checkHandler) argv.push_back("--check-handler");
  return argv;
}

WorkerArgs parseWorkerArgs(const std::vector<std::string>& argv) {
  WorkerArgs a;
  CLI::App app{"tcpfork-worker: one libevent loop serving the tcpfork protocol.\n"
               "Normally started by the tcpfork master; --listen runs it standalone."};
  app.set_version_flag("--version", versionLine("tcpfork-worker"));
  auto* listen = app.add_option("--listen", a.listen, "ADDR:PORT to bind (standalone mode)");
  auto* fd = app.add_option("--listen-fd", a.listenFds, "inherited listening socket (repeatable)")
                 ->check(CLI::NonNegativeNumber);
  listen->excludes(fd);

  // The settings, as text checked by parseSetting; set once the parse passed.
  std::span<const WorkerSetting> table = workerSettingTable();
  std::vector<std::string> texts(table.size());
  std::vector<CLI::Option*> settingOptions;
  auto optionOf = [&](std::string_view key) { return settingOptions.at(size_t(&workerSetting(key) - table.data())); };
  for (size_t i = 0; i < table.size(); ++i) {
    const WorkerSetting& setting = table[i];
    CLI::Option* option = app.add_option(std::string(setting.flag), texts[i], std::string(setting.help))
                              ->type_name(typeName(setting))
                              ->check(checkOf(setting));
    if (!setting.optional) option->default_str(formatSetting(setting, setting.field.get(a.settings)));
    settingOptions.push_back(option);
  }
  for (size_t i = 0; i < table.size(); ++i) {
    if (!table[i].needs.empty()) settingOptions[i]->needs(optionOf(table[i].needs));
  }

  app.add_option("--cpu", a.cpu, "run on this CPU only (sched_setaffinity)")->check(CLI::NonNegativeNumber);
  app.add_option("--role", a.role, "name shown in log lines")->capture_default_str();
  auto* stats = app.add_option("--stats-fd", a.statsFd, "inherited stats segment (a sealed memfd) to publish into")
                    ->check(CLI::NonNegativeNumber);
  app.add_option("--slot", a.slot, "this worker's slot in the stats segment")
      ->needs(stats)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--generation", a.generation, "reload generation this worker belongs to");
  app.add_option("--index", a.index, "worker index (which listeners it serves)");
  app.add_flag("--check-handler", a.checkHandler, "load the handler module, run its init and destroy, and exit")
      ->needs(optionOf("handler.module"));
  app.add_flag("--no-stats", a.noStats, "count nothing (to measure what stats cost)");
  app.add_option("--parent-pid", a.parentPid, "exit when this process (the master) is gone");

  try {
    // CLI11 takes the arguments reversed, without argv[0].
    std::vector<std::string> reversed(argv.rbegin(), argv.rend() - (argv.empty() ? 0 : 1));
    app.parse(reversed);
    if (a.listen.empty() && a.listenFds.empty() && !a.checkHandler) throw CLI::RequiredError("one of --listen or --listen-fd");
    if (stats->count() > 0 && a.slot < 0) throw CLI::RequiredError("--slot (with --stats-fd)");
  } catch (const CLI::ParseError& e) {
    std::ostringstream out;
    std::ostringstream err;
    int code = app.exit(e, out, err);
    throw WorkerArgsError(out.str(), err.str(), code);
  }
  for (size_t i = 0; i < table.size(); ++i) {
    if (settingOptions[i]->count() > 0) table[i].field.set(a.settings, parseSetting(table[i], texts[i]));
  }
  return a;
}

}  // namespace tcpfork
