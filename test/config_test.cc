#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "contract/worker_setting_table.h"
#include "master/config/config.h"

namespace tcpfork {
namespace {

// One file per test process, removed when the process ends.
std::string writeTemp(const std::string& yaml) {
  static const struct File {
    std::string path = "/tmp/tcpfork-config-test-" + std::to_string(::getpid()) + ".yaml";
    ~File() { ::unlink(path.c_str()); }
  } kFile;
  std::ofstream(kFile.path) << yaml;
  return kFile.path;
}

std::string errorOf(const std::string& yaml) {
  try {
    loadConfig(writeTemp(yaml));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsNeedNoFile) {
  Config c = loadConfig("");
  EXPECT_EQ(c.name, "tcpfork");
  EXPECT_EQ(c.listen, std::vector<std::string>{"0.0.0.0:8888"});
  EXPECT_EQ(c.metricsListen, "127.0.0.1:8889");
  EXPECT_EQ(c.metricsNamespace, "tcp_server");
  EXPECT_EQ(c.effectiveWorkers(), usableCores());
  EXPECT_EQ(c.effectiveProfileDir(), "/tmp/tcpfork_profile");
  EXPECT_EQ(c.worker.profileDuration, Millis(60'000));
}

TEST(Config, ReadsEveryKey) {
  Config c = loadConfig(writeTemp(R"(
name: edge
listen: ["127.0.0.1:7000", "[::1]:7000"]
workers: 3
max_workers: 8
max_connections: 500
max_frame_bytes: 4096
output_high_water: 65536
max_buffered_bytes: 1000000
max_requests: 5000
max_requests_jitter: 500
max_rss: 512MiB
max_rss_hard: 1GiB
max_lifetime: 1h
max_lifetime_jitter: 10m
idle_timeout: 1m
drain_timeout: 2500ms
worker_timeout: 3s
hang_dump_grace: 2500ms
rlimit_nofile: 4096
cpu_affinity: auto
steering: {enabled: true, stale_after: 400ms, max_queue: 64}
pid_file: /tmp/edge.pid
log: {file: /tmp/edge.log, level: debug}
user: nobody
group: nogroup
metrics: {listen: "127.0.0.1:9100", namespace: tcp_server_demo2}
profile:
  dir: /tmp/p
  duration: 30s
  auto: {enabled: true, interval: 5s, threshold: 90, consecutive: 2, cooldown: 10m}
)"));
  EXPECT_EQ(c.name, "edge");
  EXPECT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.effectiveWorkers(), 3u);
  EXPECT_EQ(c.maxWorkers, 8u);
  EXPECT_EQ(c.worker.maxConnections, 500u);
  EXPECT_EQ(c.worker.limits.maxFrameBytes, 4096u);
  EXPECT_EQ(c.worker.limits.outputHighWater, 65536u);
  EXPECT_EQ(c.worker.maxBufferedBytes, 1'000'000u);
  EXPECT_EQ(c.recycle.maxRequests, 5000u);
  EXPECT_EQ(c.recycle.maxRequestsJitter, 500u);
  EXPECT_EQ(c.recycle.maxRss, 512u << 20);
  EXPECT_EQ(c.recycle.maxRssHard, 1u << 30);
  EXPECT_EQ(c.recycle.maxLifetime, Millis(3'600'000));
  EXPECT_EQ(c.recycle.maxLifetimeJitter, Millis(600'000));
  EXPECT_EQ(c.worker.limits.idleTimeout, Millis(60'000));
  EXPECT_EQ(c.worker.drainTimeout, Millis(2500));
  EXPECT_EQ(c.workerTimeout, Millis(3000));
  EXPECT_EQ(c.hangDumpGrace, Millis(2500));
  EXPECT_EQ(c.worker.rlimitNofile, 4096u);
  EXPECT_EQ(c.cpuAffinity.mode, CpuAffinity::Mode::kAuto);
  EXPECT_TRUE(c.steering.enabled);
  EXPECT_EQ(c.steering.staleAfter, Millis(400));
  EXPECT_EQ(c.steering.maxQueue, 64u);
  EXPECT_EQ(c.effectivePidFile(), "/tmp/edge.pid");
  EXPECT_EQ(c.logFile, "/tmp/edge.log");
  EXPECT_EQ(c.logLevel, "debug");
  EXPECT_EQ(c.user, "nobody");
  EXPECT_EQ(c.metricsNamespace, "tcp_server_demo2");
  EXPECT_TRUE(c.profile.autoProfile.enabled);
  EXPECT_EQ(c.profile.autoProfile.consecutive, 2u);
  EXPECT_EQ(c.profile.autoProfile.cooldown, Millis(600'000));
}

TEST(Config, FlagsOverrideTheFile) {
  ConfigOverrides o;
  o.listen = {"127.0.0.1:1"};
  o.workers = 2;
  o.name = "other";
  Config c = loadConfig(writeTemp("workers: 5\nname: edge\n"), o);
  EXPECT_EQ(c.effectiveWorkers(), 2u);
  EXPECT_EQ(c.name, "other");
  EXPECT_EQ(c.listen, std::vector<std::string>{"127.0.0.1:1"});
}

TEST(Config, ErrorsNameTheKeyAndLine) {
  EXPECT_NE(errorOf("a: 1\n").find(":1: a: unknown key"), std::string::npos);
  EXPECT_NE(errorOf("metrics:\n  port: 1\n").find(":2: metrics.port: unknown key"), std::string::npos);
  EXPECT_NE(errorOf("workers: 0\n").find(":1: workers: 0 is out of range"), std::string::npos);
  EXPECT_NE(errorOf("metrics:\n  namespace: 1bad\n").find(":2: metrics.namespace: must match"), std::string::npos);
  EXPECT_NE(errorOf("name: \"a/b\"\n").find(":1: name: 'a/b' is not an instance name: use 1-64"), std::string::npos);
  // Refused by -t, not first at start (as "cannot create stats segment '..'").
  for (const char* name : {"'.'", "'..'", "'.hidden'", "'-x'"}) {
    std::string expected = ":1: name: " + std::string(name) + " is not an instance name: use 1-64";
    EXPECT_NE(errorOf(std::string("name: ") + name + "\n").find(expected), std::string::npos) << name;
  }
  EXPECT_NE(errorOf("profile:\n  auto:\n    enabled: maybe\n").find(":3: profile.auto.enabled: expected true or false"),
            std::string::npos);
  EXPECT_NE(errorOf("idle_timeout:\n").find(":1: idle_timeout: has no value"), std::string::npos);
  EXPECT_NE(errorOf("max_rss: 12 bananas\n").find(":1: max_rss: expected bytes like 1048576, 512KiB"),
            std::string::npos);
  EXPECT_FALSE(loadConfig(writeTemp("steering: off\n")).steering.enabled);
  EXPECT_NE(errorOf("steering: sometimes\n").find(":1: steering: expected true or false"), std::string::npos);
  // Under two heartbeats (100 ms apart) a healthy worker would flap.
  EXPECT_NE(errorOf("steering:\n  stale_after: 100ms\n").find(":2: steering.stale_after: 100ms is out of range"),
            std::string::npos)
      << errorOf("steering:\n  stale_after: 100ms\n");
  // Found by config_fuzz: a mapping key that is not a plain scalar.
  EXPECT_NE(errorOf("workers: 1\n? [a, b]\n: 2\n").find(":2: config: keys must be plain names"), std::string::npos);
  EXPECT_NE(errorOf("log:\n  {a: 1}: 2\n").find(":2: log: keys must be plain names"), std::string::npos);
}

// Last-one-wins would silently ignore an edit made above a forgotten line.
TEST(Config, ARepeatedKeyIsAnErrorNamingBothLines) {
  EXPECT_NE(errorOf("workers: 2\nname: a\nworkers: 3\n").find(":3: workers: appears twice (first on line 1)"),
            std::string::npos)
      << errorOf("workers: 2\nname: a\nworkers: 3\n");
  EXPECT_NE(errorOf("log:\n  level: info\n  level: debug\n").find(":3: log.level: appears twice (first on line 2)"),
            std::string::npos);
  EXPECT_NE(errorOf("listen: [\"127.0.0.1:7000\", \"127.0.0.1:7001\", \"127.0.0.1:7000\"]\n")
                .find(":1: listen: 127.0.0.1:7000 is listed twice (entries 1 and 3)"),
            std::string::npos);
  EXPECT_NE(errorOf("listen:\n  - \"[::1]:7000\"\n  - \"[0:0::1]:7000\"\n").find(":3: listen: [0:0::1]:7000 is listed twice"),
            std::string::npos)
      << errorOf("listen:\n  - \"[::1]:7000\"\n  - \"[0:0::1]:7000\"\n");
  ConfigOverrides twice;
  twice.listen = {"127.0.0.1:7000", "127.0.0.1:7000"};
  EXPECT_THROW(loadConfig("", twice), ConfigError);
}

// A deadline of now + 3,000,000 h overflows the clock, and the drain that
// should last that long becomes an instant kill.
TEST(Config, DurationsHaveACeiling) {
  EXPECT_NE(errorOf("drain_timeout: 3000000h\n").find(":1: drain_timeout: 3000000h is out of range 0ms..24h"),
            std::string::npos)
      << errorOf("drain_timeout: 3000000h\n");
  EXPECT_NE(errorOf("drain_timeout: 9223372036854775807ms\n").find(":1: drain_timeout: '9223372036854775807ms' is too long a duration"),
            std::string::npos)
      << errorOf("drain_timeout: 9223372036854775807ms\n");
  EXPECT_NE(errorOf("idle_timeout: 1e400\n").find("idle_timeout: expected a duration"), std::string::npos);
  EXPECT_NE(errorOf("idle_timeout: 99999999999999999999999999h\n").find("idle_timeout: '99999999999999999999999999h' is too long"),
            std::string::npos)
      << errorOf("idle_timeout: 99999999999999999999999999h\n");
  EXPECT_NE(errorOf("worker_timeout: 2h\n").find("worker_timeout: 2h is out of range 500ms..1h"), std::string::npos);
  EXPECT_NE(errorOf("profile:\n  duration: 61m\n").find(":2: profile.duration: 61m is out of range 100ms..1h"),
            std::string::npos);
  EXPECT_EQ(loadConfig(writeTemp("drain_timeout: 24h\n")).worker.drainTimeout, Millis(86'400'000));
  EXPECT_EQ(formatDuration(Millis(250)), "250ms");
  EXPECT_EQ(formatDuration(Millis(90'000)), "90s");
}

TEST(Config, OverloadKeysAreCheckedAndNamed) {
  Config c = loadConfig(writeTemp("overload:\n  shed: on\n  target: 20ms\n  interval: 1s\n"));
  EXPECT_EQ(c.worker.overload.shed, ShedMode::kOn);
  EXPECT_EQ(c.worker.overload.target, Millis(20));
  EXPECT_EQ(c.worker.overload.interval, Millis(1000));
  EXPECT_TRUE(c.worker.sheds());
  // auto: on with a module, off for the built-in ack.
  EXPECT_EQ(loadConfig("").worker.overload.shed, ShedMode::kAuto);
  EXPECT_FALSE(loadConfig("").worker.sheds());
  WorkerSettings withModule;
  withModule.handler.module = "/usr/lib/tcpfork/handlers/journal.so";
  EXPECT_TRUE(withModule.sheds());
  withModule.overload.shed = ShedMode::kOff;
  EXPECT_FALSE(withModule.sheds());

  EXPECT_NE(errorOf("overload:\n  shed: sometimes\n").find(":2: overload.shed: expected auto, on or off"),
            std::string::npos);
  EXPECT_NE(errorOf("overload:\n  target: 0ms\n").find(":2: overload.target: 0ms is out of range 1ms..10s"),
            std::string::npos);
  EXPECT_NE(errorOf("overload:\n  interval: 5ms\n").find(":2: overload.interval: 5ms is out of range 10ms..1m"),
            std::string::npos);
  EXPECT_NE(errorOf("overload:\n  speed: 1\n").find(":2: overload.speed: unknown key"), std::string::npos);
  // The target is judged over the interval: it cannot be longer.
  std::string longer = errorOf("overload:\n  target: 200ms\n  interval: 100ms\n");
  EXPECT_NE(longer.find(":2: overload.target: 200ms is longer than overload.interval (100ms, line 3)"),
            std::string::npos)
      << longer;
  std::string byDefault = errorOf("overload:\n  target: 150ms\n");
  EXPECT_NE(byDefault.find(":2: overload.target: 150ms is longer than overload.interval (100ms, the default)"),
            std::string::npos)
      << byDefault;
  EXPECT_NO_THROW(loadConfig(writeTemp("overload:\n  target: 100ms\n")));
}

TEST(Config, ANonLoopbackAdminAddressNeedsItsOwnKey) {
  EXPECT_NE(errorOf("metrics:\n  listen: 0.0.0.0:8889\n").find(":2: metrics.listen: 0.0.0.0:8889 is not a loopback address"),
            std::string::npos);
  EXPECT_NO_THROW(loadConfig(writeTemp("metrics:\n  listen: 0.0.0.0:8889\n  allow_remote: true\n")));
  EXPECT_NO_THROW(loadConfig(writeTemp("metrics:\n  listen: \"[::1]:8889\"\n")));
}

// The agent check is off by default; like the admin port, another address
// than loopback needs its own allow_remote.
TEST(Config, TheAgentCheckIsOffByDefaultAndLoopbackUnlessAllowed) {
  EXPECT_TRUE(loadConfig("").agentListen.empty());
  Config c = loadConfig(writeTemp("agent:\n  listen: 127.0.0.1:8887\n"));
  EXPECT_EQ(c.agentListen, "127.0.0.1:8887");
  EXPECT_FALSE(c.agentAllowRemote);
  EXPECT_EQ(c.agentDrainDelay, Millis(2000));
  EXPECT_EQ(loadConfig(writeTemp("agent:\n  drain_delay: 0\n")).agentDrainDelay, Millis(0));
  EXPECT_NE(errorOf("agent:\n  drain_delay: 2m\n").find(":2: agent.drain_delay"), std::string::npos);
  EXPECT_NE(errorOf("agent:\n  listen: 0.0.0.0:8887\n").find(":2: agent.listen: 0.0.0.0:8887 is not a loopback address"),
            std::string::npos);
  EXPECT_NO_THROW(loadConfig(writeTemp("agent:\n  listen: 0.0.0.0:8887\n  allow_remote: true\n")));
  // metrics.allow_remote does not open the agent port, nor the other way round.
  EXPECT_NE(errorOf("metrics:\n  allow_remote: true\nagent:\n  listen: 0.0.0.0:8887\n").find("agent.listen"),
            std::string::npos);
  EXPECT_NE(errorOf("agent:\n  listen: nowhere\n").find(":2: agent.listen"), std::string::npos);
}

// The checks that compare keys run after the whole file is read, yet cite a
// line as the per-key ones do: the key at fault's, or when the file leaves it
// at its default, the line of the key it is compared with; a value a flag
// set is named as such. The file's path is written FILE here.
std::string refusal(const std::string& yaml, const ConfigOverrides& overrides = {}) {
  std::string path = writeTemp(yaml);
  try {
    loadConfig(path, overrides);
  } catch (const ConfigError& e) {
    std::string message = e.what();
    if (message.starts_with(path)) message.replace(0, path.size(), "FILE");
    return message;
  }
  return "(it loaded)";
}

std::string refusalWithoutAFile(const ConfigOverrides& overrides) {
  try {
    loadConfig("", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(it loaded)";
}

::testing::AssertionResult startsWith(const std::string& text, const std::string& prefix) {
  if (text.starts_with(prefix)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not start with '" << prefix << "'";
}

TEST(ConfigCrossKey, CitesTheLineOfTheKeyAtFault) {
  // One client sending its largest frame must fit, or it would be shed for it.
  EXPECT_EQ(refusal("max_frame_bytes: 4096\nmax_buffered_bytes: 5000\n"),
            "FILE:2: max_buffered_bytes: 5000 is less than one connection may hold: max_frame_bytes (4096, line 1) + "
            "output_high_water (262144, the default) = 266240");
  EXPECT_EQ(refusal("max_rss_hard: 512MiB\nmax_rss: 1GiB\n"),
            "FILE:1: max_rss_hard: 536870912 is not above max_rss (1073741824, line 2): the graceful recycle would "
            "never come first");
  EXPECT_EQ(refusal("max_requests: 0\nmax_requests_jitter: 10\n"),
            "FILE:2: max_requests_jitter: 10 needs max_requests; max_requests (0, line 1) is no limit");
  EXPECT_EQ(refusal("max_requests_jitter: 10\n"),
            "FILE:1: max_requests_jitter: 10 needs max_requests; max_requests (0, the default) is no limit");
  EXPECT_EQ(refusal("max_lifetime: 0\nmax_lifetime_jitter: 1m\n"),
            "FILE:2: max_lifetime_jitter: 1m needs max_lifetime; max_lifetime (0, line 1) is no limit");
  // A worker recycled every few moments would spend its life starting.
  EXPECT_EQ(refusal("name: edge\nmax_lifetime: 200ms\n"), "FILE:2: max_lifetime: 200ms is under 1s (0 = no limit)");
  EXPECT_EQ(refusal("max_workers: 4\nworkers: 9\n"), "FILE:2: workers: 9 is more than max_workers (4, line 1)");
  EXPECT_EQ(refusal("rlimit_nofile: 4096\nmax_connections: 5000\n"),
            "FILE:1: rlimit_nofile: 4096 leaves no room for max_connections (5000, line 2) and the 64 descriptors a "
            "worker needs of its own: at least 5064");
  EXPECT_TRUE(startsWith(refusal("metrics:\n  allow_remote: false\n  listen: 0.0.0.0:8889\n"),
                         "FILE:3: metrics.listen: 0.0.0.0:8889 is not a loopback address and metrics.allow_remote "
                         "(false, line 2) does not allow one; "));
  EXPECT_TRUE(startsWith(refusal("metrics:\n  listen: 0.0.0.0:8889\n"),
                         "FILE:2: metrics.listen: 0.0.0.0:8889 is not a loopback address and metrics.allow_remote "
                         "(false, the default) does not allow one; "));
  EXPECT_TRUE(startsWith(refusal("workers: 1\nname: \"a/b\"\n"), "FILE:2: name: 'a/b' is not an instance name: "));
  rlimit current{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &current), 0);
  if (::geteuid() != 0 && current.rlim_max < (rlim_t{1} << 30)) {
    EXPECT_TRUE(startsWith(refusal("name: edge\nrlimit_nofile: 1073741824\n"),
                           "FILE:2: rlimit_nofile: 1073741824 is above the hard limit ("));
  }
}

// Where the key at fault keeps its default, the line to look at is the one
// that set what it is compared with.
TEST(ConfigCrossKey, CitesTheComparedKeysLineWhenTheKeyAtFaultIsADefault) {
  EXPECT_EQ(refusal("name: edge\nmax_frame_bytes: 2147483647\n"),
            "FILE:2: max_buffered_bytes: 67108864 (the default: the file does not set it) is less than one "
            "connection may hold: max_frame_bytes (2147483647, line 2) + output_high_water (262144, the default) = "
            "2147745791");
  EXPECT_EQ(refusal("name: edge\nmax_frame_bytes: 67108864\noutput_high_water: 1048576\n"),
            "FILE:2: max_buffered_bytes: 67108864 (the default: the file does not set it) is less than one "
            "connection may hold: max_frame_bytes (67108864, line 2) + output_high_water (1048576, line 3) = "
            "68157440");
  EXPECT_EQ(refusal("name: edge\noutput_high_water: 67108864\n"),
            "FILE:2: max_buffered_bytes: 67108864 (the default: the file does not set it) is less than one "
            "connection may hold: max_frame_bytes (1048576, the default) + output_high_water (67108864, line 2) = "
            "68157440");
}

TEST(ConfigCrossKey, NamesAValueAFlagSet) {
  ConfigOverrides workers;
  workers.workers = 9;
  EXPECT_EQ(refusal("max_workers: 4\n", workers),
            "FILE:1: workers: 9 (set by --workers) is more than max_workers (4, line 1)");
  // The flag wins over the file's line, so that line is not the one cited.
  EXPECT_EQ(refusal("workers: 2\nmax_workers: 4\n", workers),
            "FILE:2: workers: 9 (set by --workers) is more than max_workers (4, line 2)");
  workers.workers = 100;
  EXPECT_EQ(refusal("name: edge\n", workers),
            "FILE: workers: 100 (set by --workers) is more than max_workers (64, the default)");
  ConfigOverrides metrics;
  metrics.metricsListen = "0.0.0.0:8889";
  EXPECT_TRUE(startsWith(refusal("metrics:\n  allow_remote: false\n", metrics),
                         "FILE:2: metrics.listen: 0.0.0.0:8889 (set by --metrics-listen) is not a loopback address "
                         "and metrics.allow_remote (false, line 2) does not allow one; "));
  EXPECT_TRUE(startsWith(refusal("metrics:\n  listen: 127.0.0.1:9100\n", metrics),
                         "FILE: metrics.listen: 0.0.0.0:8889 (set by --metrics-listen) is not a loopback address "
                         "and metrics.allow_remote (false, the default) does not allow one; "));
  metrics.metricsListen = "nowhere";
  EXPECT_EQ(refusal("name: edge\n", metrics),
            "FILE: metrics.listen: nowhere (set by --metrics-listen): address 'nowhere' has no ':PORT'");
  ConfigOverrides name;
  name.name = "a/b";
  EXPECT_TRUE(startsWith(refusal("name: edge\n", name), "FILE: name: 'a/b' (set by --name) is not an instance name: "));
}

// Built-in defaults and flags: no file, no line; the flag is still named.
TEST(ConfigCrossKey, WithoutAFileNamesTheFlag) {
  ConfigOverrides workers;
  workers.workers = 100;
  EXPECT_EQ(refusalWithoutAFile(workers),
            "config: workers: 100 (set by --workers) is more than max_workers (64, the default)");
  ConfigOverrides twice;
  twice.listen = {"127.0.0.1:7000", "127.0.0.1:7000"};
  EXPECT_EQ(refusalWithoutAFile(twice),
            "config: listen: entry 2 (set by --listen): 127.0.0.1:7000 is listed twice (entries 1 and 2)");
  ConfigOverrides name;
  name.name = "..";
  EXPECT_TRUE(startsWith(refusalWithoutAFile(name), "config: name: '..' (set by --name) is not an instance name: "));
  ConfigOverrides metrics;
  metrics.metricsListen = "0.0.0.0:8889";
  EXPECT_TRUE(startsWith(refusalWithoutAFile(metrics),
                         "config: metrics.listen: 0.0.0.0:8889 (set by --metrics-listen) is not a loopback address "
                         "and metrics.allow_remote (false, the default) does not allow one; "));
}

TEST(Config, ParsesDurations) {
  EXPECT_EQ(parseDuration("250ms"), Millis(250));
  EXPECT_EQ(parseDuration("1.5s"), Millis(1500));
  EXPECT_EQ(parseDuration("2"), Millis(2000));
  EXPECT_EQ(parseDuration("5m"), Millis(300'000));
  EXPECT_EQ(parseDuration("1h"), Millis(3'600'000));
  EXPECT_THROW(parseDuration("soon"), std::invalid_argument);
  EXPECT_THROW(parseDuration("-1s"), std::invalid_argument);
}

TEST(Config, CpuAffinityAndTheDescriptorLimit) {
  std::vector<unsigned> usable = usableCpus();
  ASSERT_FALSE(usable.empty());
  Config list = loadConfig(writeTemp("cpu_affinity: [" + std::to_string(usable.back()) + "]\n"));
  EXPECT_EQ(list.cpuAffinity.mode, CpuAffinity::Mode::kList);
  EXPECT_EQ(workerCpus(list.cpuAffinity), std::vector<int>{int(usable.back())});
  std::vector<int> all(usable.begin(), usable.end());
  EXPECT_EQ(workerCpus(loadConfig(writeTemp("cpu_affinity: auto\n")).cpuAffinity), all);
  EXPECT_TRUE(workerCpus(loadConfig(writeTemp("cpu_affinity: none\n")).cpuAffinity).empty());
  EXPECT_TRUE(workerCpus(loadConfig("").cpuAffinity).empty()) << "not pinned unless asked";
  EXPECT_NE(errorOf("cpu_affinity: [1023]\n").find(":1: cpu_affinity: CPU 1023 is not one this process may run on"),
            std::string::npos)
      << errorOf("cpu_affinity: [1023]\n");
  EXPECT_NE(errorOf("cpu_affinity: sometimes\n").find(":1: cpu_affinity: expected auto, none or a list"),
            std::string::npos);
}

TEST(Config, ParsesByteSizes) {
  EXPECT_EQ(parseBytes("1048576"), 1048576u);
  EXPECT_EQ(parseBytes("512KiB"), 512u * 1024);
  EXPECT_EQ(parseBytes("64MiB"), 64u << 20);
  EXPECT_EQ(parseBytes(" 2 GiB "), uint64_t{2} << 30);
  EXPECT_EQ(parseBytes("3M"), 3u << 20);
  EXPECT_THROW(parseBytes("1.5GiB"), std::invalid_argument);
  EXPECT_THROW(parseBytes("-1"), std::invalid_argument);
  EXPECT_THROW(parseBytes("1TiB"), std::invalid_argument);
  EXPECT_THROW(parseBytes("9999999999999999999GiB"), std::invalid_argument);
}

// Every size key takes a unit, in the file as on the worker's command line:
// max_frame_bytes: 1MiB as max_buffered_bytes: 64MiB.
TEST(Config, EverySizeKeyTakesAUnit) {
  Config c = loadConfig(writeTemp("max_frame_bytes: 1MiB\noutput_high_water: 256KiB\nmax_buffered_bytes: 64MiB\n"
                                  "max_rss: 1GiB\nmax_rss_hard: 2GiB\nprofile:\n  heap_sample: 512KiB\n"));
  EXPECT_EQ(c.worker.limits.maxFrameBytes, 1u << 20);
  EXPECT_EQ(c.worker.limits.outputHighWater, 256u << 10);
  EXPECT_EQ(c.worker.maxBufferedBytes, 64u << 20);
  EXPECT_EQ(c.recycle.maxRss, uint64_t{1} << 30);
  EXPECT_EQ(c.recycle.maxRssHard, uint64_t{2} << 30);
  EXPECT_EQ(c.worker.heapSample, 512u << 10);
  // A worker setting named for bytes or a water mark is read as bytes.
  for (const WorkerSetting& s : workerSettingTable()) {
    bool size = s.key.ends_with("_bytes") || s.key.ends_with("_water") || s.key.ends_with("heap_sample");
    if (size) {
      EXPECT_EQ(s.type, SettingType::kBytes) << s.key;
    }
  }
}

// Hostile configs: each must end as a ConfigError, quickly and in bounded
// memory, whatever it holds; a running master reads them on its own loop
// (SIGHUP), so a crash, a hang or a memory blow-up there stops the service.

// A new file at each call (a path made a FIFO is never written to again),
// removed when the test process ends.
std::string tempFile(const std::string& suffix, const std::string& text) {
  struct Files {
    std::vector<std::string> paths;
    ~Files() {
      for (const auto& p : paths) ::unlink(p.c_str());
    }
  };
  static Files files;
  std::string path = "/tmp/tcpfork-config-test-" + std::to_string(::getpid()) + "-" +
                     std::to_string(files.paths.size()) + suffix;
  std::ofstream(path, std::ios::trunc) << text;
  files.paths.push_back(path);
  return path;
}

// handler.module must name a readable file; the master never loads it.
std::string handlerYaml(const std::string& configYaml) {
  return "handler:\n  module: " + tempFile(".so", "not loaded by the master") + "\n  config: " + configYaml + "\n";
}

uint64_t statusKiB(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

struct Outcome {
  std::string error;    // the ConfigError's message
  std::string failure;  // anything else: it loaded, threw something else, crashed or hung
  double seconds = 0;   // in loadConfig
  uint64_t peakGrowthKiB = 0;  // resident memory at its peak above where it started
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << (o.failure.empty() ? o.error : o.failure) << " (" << o.seconds << " s, peak +" << o.peakGrowthKiB
            << " KiB)";
}

// loadConfig(path) in a child process limited in time (and, without a
// sanitizer's shadow memory, in address space), so that a config that
// crashes, hangs or exhausts the loader fails this test instead of ending the
// test run.
Outcome loadInChild(const std::string& path) {
  int pipeFds[2];
  if (::pipe(pipeFds) != 0) return {"", "pipe failed"};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipeFds[0]);
    ::alarm(20);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    rlimit memory{rlim_t(statusKiB("VmSize") + 1024 * 1024) * 1024, RLIM_INFINITY};
    memory.rlim_max = memory.rlim_cur;
    ::setrlimit(RLIMIT_AS, &memory);
#endif
    std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM from here
    uint64_t startKiB = statusKiB("VmRSS");
    std::string kind = "F", message = "it loaded";
    auto start = std::chrono::steady_clock::now();
    try {
      loadConfig(path);
    } catch (const ConfigError& e) {
      kind = "E", message = e.what();
    } catch (const std::exception& e) {
      message = std::string("not a ConfigError: ") + e.what();
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t peakKiB = statusKiB("VmHWM");
    std::string report = kind + " " + std::to_string(seconds) + " " +
                         std::to_string(peakKiB > startKiB ? peakKiB - startKiB : 0) + "\n" + message;
    for (size_t done = 0; done < report.size();) {
      ssize_t n = ::write(pipeFds[1], report.data() + done, report.size() - done);
      if (n <= 0) break;
      done += size_t(n);
    }
    ::_exit(0);
  }
  ::close(pipeFds[1]);
  std::string report;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipeFds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    report.append(buffer, size_t(n));
  }
  ::close(pipeFds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  Outcome o;
  std::istringstream in(report);
  std::string kind;
  if (!(in >> kind >> o.seconds >> o.peakGrowthKiB)) {
    o.failure = WIFSIGNALED(status) ? "the loader died of " + std::string(strsignal(WTERMSIG(status)))
                                    : "the loader exited with status " + std::to_string(WEXITSTATUS(status));
    return o;
  }
  in.ignore(1);
  std::string message((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  (kind == "E" ? o.error : o.failure) = message;
  return o;
}

// A clean ConfigError containing `expected`, within 2 s and 64 MiB (the
// slowest here takes 0.2 s and 28 MiB in a RelWithDebInfo build).
::testing::AssertionResult refusedWith(const std::string& yaml, const std::string& expected) {
  Outcome o = loadInChild(tempFile(".yaml", yaml));
  if (!o.failure.empty()) return ::testing::AssertionFailure() << o;
  if (o.error.find(expected) == std::string::npos) {
    return ::testing::AssertionFailure() << "expected '" << expected << "' in: " << o;
  }
  if (o.seconds > 2.0 || o.peakGrowthKiB > 64 * 1024) return ::testing::AssertionFailure() << "too costly: " << o;
  return ::testing::AssertionSuccess() << o;
}

// Nine levels of ten aliases of the level below: 10^9 scalars written out.
std::string aliasBomb() {
  std::string yaml = "\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]";
  for (int level = 1; level <= 9; ++level) {
    yaml += "\n    l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) yaml += (i ? ", *l" : "*l") + std::to_string(level - 1);
    yaml += "]";
  }
  return yaml;
}

TEST(ConfigHostile, AnAliasLoopIsAnErrorNamingItsLineAndKey) {
  const std::string loop = "an alias refers to a node that contains it (a loop)";
  EXPECT_TRUE(refusedWith(handlerYaml("&a { x: *a }"), ":3: handler.config.x: " + loop));
  EXPECT_TRUE(refusedWith(handlerYaml("&s [1, *s]"), ":3: handler.config[1]: " + loop));
  EXPECT_TRUE(refusedWith(handlerYaml("\n    a: &x [1, {b: [*x]}]"),
                          ":4: handler.config.a[1].b[0]: " + loop));
  // An alias used beside its anchor, not inside it, is no loop.
  Config c = loadConfig(tempFile(".yaml", handlerYaml("\n    base: &d {n: 1}\n    a: *d\n    b: [*d, *d]")));
  EXPECT_EQ(c.worker.handler.configJson, R"({"a":{"n":1},"b":[{"n":1},{"n":1}],"base":{"n":1}})");
}

TEST(ConfigHostile, AnAliasBombIsRefusedBeforeItExpands) {
  EXPECT_TRUE(refusedWith(handlerYaml(aliasBomb()), "more than 65536 bytes as JSON"));
  std::string scalarBomb = "\n    s: &s \"" + std::string(1000, 'x') + "\"\n    many: [*s";
  for (int i = 0; i < 1000; ++i) scalarBomb += ", *s";
  EXPECT_TRUE(refusedWith(handlerYaml(scalarBomb + "]"), "handler.config.many[64]: more than 65536 bytes as JSON"));
  // The limit is on the JSON text exactly: {"k":"..."} is 8 bytes and the string.
  EXPECT_NO_THROW(loadConfig(tempFile(".yaml", handlerYaml("{k: " + std::string(65528, 'x') + "}"))));
  EXPECT_TRUE(
      refusedWith(handlerYaml("{k: " + std::string(65529, 'x') + "}"), ":3: handler.config.k: more than 65536"));
}

TEST(ConfigHostile, DeepNestingIsAnError) {
  const std::string tooDeep = ": collections nested too deeply (the YAML parser stops at about 500 levels)";
  EXPECT_TRUE(refusedWith(handlerYaml(std::string(100'000, '[')), tooDeep));
  std::string maps;
  for (int i = 0; i < 100'000; ++i) maps += "{a: ";
  EXPECT_TRUE(refusedWith(handlerYaml(maps), tooDeep));
  EXPECT_TRUE(refusedWith(std::string(100'000, '[') + std::string(100'000, ']'), tooDeep));
  std::string block;
  for (int i = 0; i < 1000; ++i) block += std::string(size_t(i), ' ') + "a:\n";
  EXPECT_TRUE(refusedWith(block, tooDeep));
  // Below the parser's limit, a module's config still stops at 64 levels.
  EXPECT_NO_THROW(loadConfig(tempFile(".yaml", handlerYaml(std::string(64, '[') + std::string(64, ']')))));
  EXPECT_TRUE(refusedWith(handlerYaml(std::string(65, '[') + std::string(65, ']')), "nested deeper than 64 levels"));
  EXPECT_TRUE(refusedWith(handlerYaml(std::string(400, '[') + std::string(400, ']')), "nested deeper than 64 levels"));
}

TEST(ConfigHostile, AFileLargerThanAnyConfigIsRefusedUnread) {
  std::string big = tempFile("-big.yaml", "");
  ASSERT_EQ(::truncate(big.c_str(), off_t{1} << 30), 0);
  Outcome o = loadInChild(big);
  EXPECT_NE(o.error.find("big.yaml: 1073741824 bytes; a config file is at most 1048576"), std::string::npos) << o;
  EXPECT_LT(o.seconds, 2.0) << o;
  o = loadInChild("/dev/zero");
  EXPECT_EQ(o.error, "/dev/zero: not a regular file") << o;
  std::string fifo = tempFile("-fifo", "");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  o = loadInChild(fifo);  // opening it must not wait for a writer
  EXPECT_NE(o.error.find("fifo: not a regular file"), std::string::npos) << o;
  o = loadInChild("/nonexistent/tcpfork.yaml");
  EXPECT_EQ(o.error, "/nonexistent/tcpfork.yaml: open: No such file or directory") << o;
  // At the limit, comments and all, a config still loads.
  std::string padded = "workers: 1\n#" + std::string((1 << 20) - 13, 'x') + "\n";
  ASSERT_EQ(padded.size(), size_t{1} << 20);
  EXPECT_NO_THROW(loadConfig(tempFile(".yaml", padded)));
  EXPECT_TRUE(refusedWith(padded + "\n", "1048577 bytes; a config file is at most 1048576"));
}

// std::regex recurses once per character: these crashed the loader.
TEST(ConfigHostile, LongValuesAreErrors) {
  EXPECT_TRUE(refusedWith("metrics:\n  namespace: " + std::string(200'000, 'a') + "\n",
                          ":2: metrics.namespace: a value of 200000 bytes; at most 4096"));
  EXPECT_TRUE(refusedWith("max_rss: \"" + std::string(200'000, ' ') + "1\"\n", ":1: max_rss: a value of 200001 bytes"));
  EXPECT_TRUE(refusedWith("idle_timeout: " + std::string(4000, '1') + "\n", ":1: idle_timeout: '1111"));  // 1e3999 s
  EXPECT_TRUE(refusedWith(handlerYaml("{x: " + std::string(200'000, '1') + "}"), "handler.config.x: more than 65536"));
  EXPECT_TRUE(refusedWith(handlerYaml("{x: 1" + std::string(60'000, '0') + ".5}"), "is out of a float's range"));
  EXPECT_TRUE(refusedWith(handlerYaml("{x: \"\xff\"}"), ":3: handler.config.x: not UTF-8 text"));
  EXPECT_EQ(parseBytes(std::string(4000, ' ') + "1" + std::string(4000, ' ')), 1u);
  EXPECT_EQ(parseDuration("0." + std::string(4000, '0') + "1s"), Millis(0));
}

// Keys that take a list or a mapping meet aliases too: none may loop.
TEST(ConfigHostile, AliasesOutsideHandlerConfigCannotLoop) {
  EXPECT_TRUE(refusedWith("listen: &s [*s]\n", ":1: listen: expected a single value"));
  EXPECT_TRUE(refusedWith("cpu_affinity: &s [*s]\n", ":1: cpu_affinity: expected a single value"));
  EXPECT_TRUE(refusedWith("profile: &p {auto: *p}\n", ":1: profile.auto.auto: unknown key"));
  EXPECT_TRUE(refusedWith("log: &l {file: *l}\n", ":1: log.file: expected a single value"));
  EXPECT_TRUE(refusedWith("&r {workers: 1, steering: *r}\n", ":1: steering.workers: unknown key"));
  // A long list is checked for repeats in n log n: 20,000 addresses, then one twice.
  std::string many = "listen: [";
  for (int port = 1; port <= 20'000; ++port) many += "127.0.0.1:" + std::to_string(port) + ", ";
  EXPECT_TRUE(refusedWith(many + "127.0.0.1:7]\n", "127.0.0.1:7 is listed twice (entries 7 and 20001)"));
}

}  // namespace
}  // namespace tcpfork
