#include "master/config/config.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/socket.h"
#include "base/unique_fd.h"
#include "contract/worker_setting_table.h"
#include "master/config/config_origins.h"
#include "master/config/config_reader.h"
#include "master/config/config_rules.h"
#include "master/config/yaml_json.h"

namespace tcpfork {
namespace {

KeyLines walk(const std::string& path, const YAML::Node& root, Config& c);

// Well under Linux's limit on one argument (MAX_ARG_STRLEN, 128 KiB).
constexpr size_t kMaxHandlerConfigBytes = 64 * 1024;
// Deeper than any module's settings need; a module's own JSON parser may
// recurse once per level.
constexpr size_t kMaxHandlerConfigDepth = 64;
// A commented config with every key is about 10 KiB; handler.config takes at
// most 64 KiB.
constexpr size_t kMaxConfigFileBytes = 1024 * 1024;

// Names are checked by hand, not with std::regex: it recurses once per
// character, and a value some 10,000 characters long overflows the stack.
bool isAlpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
bool isDigit(char ch) { return ch >= '0' && ch <= '9'; }

// [a-zA-Z_][a-zA-Z0-9_]*
bool isMetricPrefix(const std::string& text) {
  if (text.empty() || isDigit(text[0])) return false;
  return std::all_of(text.begin(), text.end(), [](char ch) { return isAlpha(ch) || isDigit(ch) || ch == '_'; });
}

// The file's text, refused unread when it is larger than any config: a path
// naming /dev/zero, a FIFO or a gigabyte file fails at once instead of
// holding the master (a reload runs on its loop) or exhausting its memory.
std::string readText(const std::string& path) {
  auto fail = [&](const std::string& why) { throw ConfigError(fmt::format("{}: {}", path, why)); };
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) fail(fmt::format("open: {}", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(fmt::format("fstat: {}", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) fail("not a regular file");
  auto tooLarge = [&](uint64_t size) {
    fail(fmt::format("{} bytes; a config file is at most {}", size, kMaxConfigFileBytes));
  };
  if (uint64_t(st.st_size) > kMaxConfigFileBytes) tooLarge(uint64_t(st.st_size));
  // Read one byte past the limit, in case the file grew since fstat.
  std::string text(kMaxConfigFileBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(fmt::format("read: {}", std::strerror(errno)));
    if (n == 0) break;
    got += size_t(n);
  }
  if (got > kMaxConfigFileBytes) tooLarge(got);
  text.resize(got);
  return text;
}

// Reads `path` into `c`; returns the line of each key it sets.
KeyLines readFile(const std::string& path, Config& c) {
  YAML::Node root;
  try {
    root = YAML::Load(readText(path));
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's parser recurses once per level and stops itself a few
    // hundred levels down (its message says only "bad file").
    throw ConfigError(fmt::format("{}:{}: collections nested too deeply (the YAML parser stops at about 500 levels)",
                                  path, e.mark.line + 1));
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}: YAML syntax error: {}", path, e.mark.line + 1, e.msg));
  }
  if (root.IsNull()) return {};  // an empty file means all defaults
  try {
    return walk(path, root, c);
  } catch (const YAML::Exception& e) {
    // Anything yaml-cpp still throws (found by fuzzing) becomes a config error.
    throw ConfigError(fmt::format("{}:{}: {}", path, e.mark.line + 1, e.msg));
  }
}

// handler.module, made absolute against the config file's directory (a
// daemon's working directory is /), and checked to be a file the workers can
// open. The master never opens it: workers load it.
std::string modulePath(const ConfigReader& r, const YAML::Node& node, const std::string& key, const std::string& configPath) {
  std::filesystem::path module(r.scalar(node, key));
  if (module.empty()) r.fail(node, key, "is empty");
  if (module.is_relative()) module = std::filesystem::absolute(std::filesystem::path(configPath).parent_path() / module);
  module = module.lexically_normal();
  struct stat st {};
  if (::stat(module.c_str(), &st) != 0) r.fail(node, key, fmt::format("{}: {}", module.string(), std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) r.fail(node, key, fmt::format("{}: not a regular file", module.string()));
  if (::access(module.c_str(), R_OK) != 0) r.fail(node, key, fmt::format("{}: {}", module.string(), std::strerror(errno)));
  return module.string();
}

// Reads worker setting `s` into `w`, checked as the worker's command line
// checks it; a module's path and config are first made what the workers are
// given.
void readWorkerSetting(const ConfigReader& r, const std::string& configPath, const WorkerSetting& s,
                       const YAML::Node& node, const std::string& key, WorkerSettings& w) {
  switch (s.type) {
    case SettingType::kModulePath:
      s.field.set(w, modulePath(r, node, key, configPath));
      return;
    case SettingType::kJson:
      // At most 64 KiB: it goes on each worker's command line.
      try {
        s.field.set(w, yamlToJson(node, {kMaxHandlerConfigDepth, kMaxHandlerConfigBytes}).dump());
      } catch (const YamlJsonError& e) {
        r.fail(e.mark(), key + e.path(), e.what());
      }
      return;
    default:
      s.field.set(w, r.setting(node, key, s));
  }
}

KeyLines walk(const std::string& path, const YAML::Node& root, Config& c) {
  ConfigReader r(path);
  constexpr Millis kHour{3'600'000};
  constexpr Millis kDay = 24 * kHour;
  constexpr uint64_t kMaxU32 = 0xffffffffu;
  // `handlers` (the master's keys in the mapping `prefix`, "" at the top) and
  // the worker settings there, which are read into c.worker by the table.
  // Those the master owns too are among `handlers`.
  auto withWorkerKeys = [&](std::string_view prefix, ConfigReader::Handlers handlers) {
    for (const WorkerSetting& s : workerSettingTable()) {
      size_t dot = s.key.rfind('.');
      std::string_view parent = dot == std::string_view::npos ? std::string_view() : s.key.substr(0, dot);
      if (s.masterOwns || parent != prefix) continue;
      std::string name(s.key.substr(parent.empty() ? 0 : dot + 1));
      auto read = [&r, &path, &s, &c](const YAML::Node& n, const std::string& k) {
        readWorkerSetting(r, path, s, n, k, c.worker);
      };
      if (!handlers.emplace(name, read).second) throw std::logic_error("config key read twice: " + std::string(s.key));
    }
    return handlers;
  };
  r.forEach(root, "",
            withWorkerKeys("", {
                {"name", [&](auto& n, auto& k) { c.name = r.scalar(n, k); }},
                {"listen",
                 [&](auto& n, auto& k) {
                   c.listen.clear();
                   if (n.IsScalar()) {
                     c.listen.push_back(r.scalar(n, k));
                   } else if (n.IsSequence() && n.size() > 0) {
                     for (const auto& item : n) c.listen.push_back(r.scalar(item, k));
                   } else {
                     r.fail(n, k, "expected ADDR:PORT or a list of them");
                   }
                   if (auto problem = listenProblem(c.listen)) {
                     r.fail(n.IsSequence() ? n[problem->entry] : n, k, problem->why);
                   }
                 }},
                {"workers",
                 [&](auto& n, auto& k) {
                   c.workers = r.scalar(n, k) == "auto" ? 0 : unsigned(r.integer(n, k, 1, 4096));
                 }},
                {"max_workers", [&](auto& n, auto& k) { c.maxWorkers = unsigned(r.integer(n, k, 1, 4096)); }},
                {"max_requests", [&](auto& n, auto& k) { c.recycle.maxRequests = r.integer(n, k, 0, uint64_t{1} << 62); }},
                {"max_requests_jitter",
                 [&](auto& n, auto& k) { c.recycle.maxRequestsJitter = r.integer(n, k, 0, uint64_t{1} << 62); }},
                {"max_rss", [&](auto& n, auto& k) { c.recycle.maxRss = r.bytes(n, k, 0, uint64_t{1} << 50); }},
                {"max_rss_hard", [&](auto& n, auto& k) { c.recycle.maxRssHard = r.bytes(n, k, 0, uint64_t{1} << 50); }},
                {"max_lifetime",
                 [&](auto& n, auto& k) { c.recycle.maxLifetime = r.duration(n, k, Millis(0), 365 * kDay); }},
                {"max_lifetime_jitter",
                 [&](auto& n, auto& k) { c.recycle.maxLifetimeJitter = r.duration(n, k, Millis(0), 365 * kDay); }},
                {"worker_timeout",
                 [&](auto& n, auto& k) { c.workerTimeout = r.duration(n, k, Millis(500), kHour); }},
                {"hang_dump_grace",
                 [&](auto& n, auto& k) { c.hangDumpGrace = r.duration(n, k, Millis(0), Millis(60'000)); }},
                {"cpu_affinity",
                 [&](auto& n, auto& k) {
                   CpuAffinity& a = c.cpuAffinity;
                   a.cpus.clear();
                   if (n.IsScalar() && (n.Scalar() == "auto" || n.Scalar() == "none")) {
                     a.mode = n.Scalar() == "auto" ? CpuAffinity::Mode::kAuto : CpuAffinity::Mode::kNone;
                     return;
                   }
                   if (!n.IsSequence() || n.size() == 0) r.fail(n, k, "expected auto, none or a list of CPU numbers");
                   a.mode = CpuAffinity::Mode::kList;
                   std::vector<unsigned> usable = usableCpus();
                   for (const auto& item : n) {
                     auto cpu = unsigned(r.integer(item, k, 0, CPU_SETSIZE - 1));
                     if (std::find(usable.begin(), usable.end(), cpu) == usable.end()) {
                       r.fail(item, k, fmt::format("CPU {} is not one this process may run on ({})", cpu,
                                                   fmt::join(usable, ",")));
                     }
                     a.cpus.push_back(cpu);
                   }
                 }},
                {"steering",
                 [&](auto& n, auto& k) {
                   SteeringConfig& s = c.steering;
                   if (n.IsScalar()) {
                     s.enabled = r.boolean(n, k);  // steering: off
                     return;
                   }
                   r.forEach(n, k,
                             {{"enabled", [&](auto& m, auto& mk) { s.enabled = r.boolean(m, mk); }},
                              {"stale_after",
                               [&](auto& m, auto& mk) { s.staleAfter = r.duration(m, mk, Millis(150), kHour); }},
                              {"max_queue",
                               [&](auto& m, auto& mk) { s.maxQueue = uint32_t(r.integer(m, mk, 1, kMaxU32)); }}});
                 }},
                {"pid_file", [&](auto& n, auto& k) { c.pidFile = r.scalar(n, k); }},
                {"user", [&](auto& n, auto& k) { c.user = r.scalar(n, k); }},
                {"group", [&](auto& n, auto& k) { c.group = r.scalar(n, k); }},
                {"log",
                 [&](auto& n, auto& k) {
                   r.forEach(n, k,
                             withWorkerKeys("log", {{"file", [&](auto& m, auto& mk) { c.logFile = r.scalar(m, mk); }},
                                                    {"level", [&](auto& m, auto& mk) {
                                                       c.logLevel = std::get<std::string>(
                                                           r.setting(m, mk, workerSetting("log.level")));
                                                     }}}));
                 }},
                {"metrics",
                 [&](auto& n, auto& k) {
                   r.forEach(n, k,
                             {{"listen",
                               [&](auto& m, auto& mk) {
                                 c.metricsListen = r.scalar(m, mk);
                                 try {
                                   parseAddress(c.metricsListen);
                                 } catch (const std::invalid_argument& e) {
                                   r.fail(m, mk, e.what());
                                 }
                               }},
                              {"allow_remote", [&](auto& m, auto& mk) { c.metricsAllowRemote = r.boolean(m, mk); }},
                              {"namespace", [&](auto& m, auto& mk) {
                                 c.metricsNamespace = r.scalar(m, mk);
                                 if (!isMetricPrefix(c.metricsNamespace)) {
                                   r.fail(m, mk, "must match [a-zA-Z_][a-zA-Z0-9_]* (a Prometheus name prefix)");
                                 }
                               }}});
                 }},
                {"agent",
                 [&](auto& n, auto& k) {
                   r.forEach(n, k,
                             {{"listen",
                               [&](auto& m, auto& mk) {
                                 c.agentListen = r.scalar(m, mk);
                                 try {
                                   if (!c.agentListen.empty()) parseAddress(c.agentListen);
                                 } catch (const std::invalid_argument& e) {
                                   r.fail(m, mk, e.what());
                                 }
                               }},
                              {"allow_remote", [&](auto& m, auto& mk) { c.agentAllowRemote = r.boolean(m, mk); }},
                              {"drain_delay", [&](auto& m, auto& mk) {
                                 c.agentDrainDelay = r.duration(m, mk, Millis(0), Millis(60'000));
                               }}});
                 }},
                {"handler",
                 [&](auto& n, auto& k) {
                   r.forEach(n, k, withWorkerKeys("handler", {}));
                   if (c.worker.handler.module.empty()) r.fail(n, k, "needs module (the handler's .so file)");
                 }},
                {"overload", [&](auto& n, auto& k) { r.forEach(n, k, withWorkerKeys("overload", {})); }},
                {"profile",
                 [&](auto& n, auto& k) {
                   r.forEach(
                       n, k,
                       withWorkerKeys("profile", {
                        {"dir", [&](auto& m, auto& mk) { c.profile.dir = r.scalar(m, mk); }},
                        {"http", [&](auto& m, auto& mk) { c.profile.http = r.boolean(m, mk); }},
                        {"http_remote", [&](auto& m, auto& mk) { c.profile.httpRemote = r.boolean(m, mk); }},
                        {"auto", [&](auto& m, auto& mk) {
                           auto& a = c.profile.autoProfile;
                           r.forEach(m, mk,
                                     {{"enabled", [&](auto& v, auto& vk) { a.enabled = r.boolean(v, vk); }},
                                      {"interval",
                                       [&](auto& v, auto& vk) { a.interval = r.duration(v, vk, Millis(100), kDay); }},
                                      {"threshold", [&](auto& v, auto& vk) { a.threshold = r.number(v, vk, 0.001, 100); }},
                                      {"consecutive",
                                       [&](auto& v, auto& vk) { a.consecutive = unsigned(r.integer(v, vk, 1, 1000)); }},
                                      {"cooldown",
                                       [&](auto& v, auto& vk) { a.cooldown = r.duration(v, vk, Millis(0), 7 * kDay); }}});
                         }}}));
                 }},
            }));
  return r.lines();
}

}  // namespace

unsigned Config::effectiveWorkers() const { return workers > 0 ? workers : std::min(usableCores(), maxWorkers); }

std::string Config::effectivePidFile() const {
  if (!pidFile.empty()) return pidFile;
  return (::geteuid() == 0 ? "/run/" : "/tmp/") + name + ".pid";
}

std::string Config::effectiveProfileDir() const { return profile.dir.empty() ? "/tmp/" + name + "_profile" : profile.dir; }

Config loadConfig(const std::string& path, const ConfigOverrides& overrides) {
  Config c;
  ConfigOrigins origins(path, path.empty() ? KeyLines{} : readFile(path, c));
  if (!overrides.listen.empty()) {
    c.listen = overrides.listen;
    origins.setFlag("listen", "--listen");
  }
  // A flag's value replaces the file's, and errors name the flag.
  auto take = [&](const auto& flagValue, auto& field, const char* key, const char* flag) {
    if (!flagValue) return;
    field = *flagValue;
    origins.setFlag(key, flag);
  };
  take(overrides.workers, c.workers, "workers", "--workers");
  take(overrides.metricsListen, c.metricsListen, "metrics.listen", "--metrics-listen");
  take(overrides.pidFile, c.pidFile, "pid_file", "--pid-file");
  take(overrides.name, c.name, "name", "--name");
  take(overrides.logFile, c.logFile, "log.file", "--log-file");
  checkRulesAcrossKeys(c, origins);
  return c;
}

}  // namespace tcpfork
