// What a HUP may change: restart-only keys are put back and named; the rest
// of the new file applies; too many workers refuse the reload. Every key the
// file takes is changed alone, so the list restartOnlyKeys() gives is the
// whole of what a reload keeps.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "master/config/reload_plan.h"

namespace tcpfork {
namespace {

// Configs as the master gets them: files read by loadConfig. Keys are dotted
// as in the file ("profile.auto.enabled"), values are YAML.
using Values = std::map<std::string, std::string>;

// A file per name for this test process, removed when it ends.
std::string tempFile(const std::string& name, const std::string& text) {
  static struct Files {
    std::set<std::string> paths;
    ~Files() {
      for (const auto& p : paths) ::unlink(p.c_str());
    }
  } files;
  std::string path = "/tmp/tcpfork-reload-plan-test-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path, std::ios::trunc) << text;
  files.paths.insert(path);
  return path;
}

struct YamlTree {
  std::string value;
  std::map<std::string, YamlTree> children;
};

void renderYaml(const YamlTree& tree, const std::string& indent, std::string& out) {
  for (const auto& [key, child] : tree.children) {
    if (child.children.empty()) {
      out += indent + key + ": " + child.value + "\n";
    } else {
      out += indent + key + ":\n";
      renderYaml(child, indent + "  ", out);
    }
  }
}

std::string yamlOf(const Values& values) {
  YamlTree root;
  for (const auto& [dotted, value] : values) {
    YamlTree* node = &root;
    for (size_t begin = 0, dot = 0; dot != std::string::npos; begin = dot + 1) {
      dot = dotted.find('.', begin);
      node = &node->children[dotted.substr(begin, dot - begin)];
    }
    node->value = value;
  }
  std::string out;
  renderYaml(root, "", out);
  return out;
}

Config load(const Values& values) { return loadConfig(tempFile("config.yaml", yamlOf(values))); }

std::string refusal(const Values& values) {
  try {
    load(values);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Every key the file takes, dotted, as the loader itself answers: an unknown
// key's error lists the keys known beside it, and a key that holds a mapping
// answers the same for an unknown key inside it.
void collectKeys(const std::string& prefix, std::set<std::string>& keys) {
  const std::string probe = prefix.empty() ? "no_such_key" : prefix + ".no_such_key";
  std::string error = refusal({{probe, "1"}});
  const std::string marker = probe + ": unknown key (known here: ";
  size_t begin = error.find(marker);
  if (begin == std::string::npos) {
    keys.insert(prefix);  // not a mapping of keys: a key that takes a value
    return;
  }
  begin += marker.size();
  std::string known = error.substr(begin, error.rfind(')') - begin);
  for (size_t at = 0, comma = 0; comma != std::string::npos; at = comma + 2) {
    comma = known.find(", ", at);
    std::string key = known.substr(at, comma - at);
    collectKeys(prefix.empty() ? key : prefix + "." + key, keys);
  }
}

std::set<std::string> keysTheFileTakes() {
  std::set<std::string> keys;
  collectKeys("", keys);
  return keys;
}

// What the running master and every changed file below share: a handler (so
// that handler keys can change; the master never loads it) and the limits
// the jitters and the descriptor limit need.
Values base(const std::string& module) {
  return {{"handler.module", module}, {"max_requests", "1000"}, {"max_lifetime", "1h"}, {"max_connections", "1000"}};
}

// For every key the file takes, a value other than the base's.
Values changedValues(const std::string& otherModule) {
  return {
      {"name", "edge"},
      {"pid_file", "/tmp/edge.pid"},
      {"max_workers", "8"},
      {"metrics.listen", "127.0.0.1:9100"},
      {"profile.dir", "/tmp/edge_profile"},
      {"profile.http", "true"},
      {"user", "nobody"},
      {"group", "nogroup"},
      {"steering.enabled", "false"},
      {"listen", "127.0.0.1:7000"},
      {"workers", "1"},
      {"max_connections", "500"},
      {"max_frame_bytes", "4096"},
      {"output_high_water", "65536"},
      {"max_buffered_bytes", "2000000"},
      {"max_requests", "2000"},
      {"max_requests_jitter", "10"},
      {"max_rss", "512MiB"},
      {"max_rss_hard", "1GiB"},
      {"max_lifetime", "2h"},
      {"max_lifetime_jitter", "1m"},
      {"idle_timeout", "30s"},
      {"drain_timeout", "5s"},
      {"worker_timeout", "3s"},
      {"hang_dump_grace", "2s"},
      {"rlimit_nofile", "2048"},
      {"cpu_affinity", "auto"},
      {"steering.stale_after", "400ms"},
      {"steering.max_queue", "64"},
      {"log.file", "/tmp/edge.log"},
      {"log.level", "debug"},
      {"metrics.allow_remote", "true"},
      {"agent.listen", "127.0.0.1:9101"},
      {"agent.allow_remote", "true"},
      {"agent.drain_delay", "5s"},
      {"metrics.namespace", "edge"},
      {"profile.duration", "30s"},
      {"profile.heap_sample", "1MiB"},
      {"profile.http_remote", "true"},
      {"profile.auto.enabled", "true"},
      {"profile.auto.interval", "5s"},
      {"profile.auto.threshold", "90"},
      {"profile.auto.consecutive", "2"},
      {"profile.auto.cooldown", "10m"},
      {"handler.module", otherModule},
      {"handler.config", "{a: 1}"},
      {"handler.max_pending", "5"},
      {"handler.pending_timeout", "5s"},
      {"overload.shed", "off"},
      {"overload.target", "20ms"},
      {"overload.interval", "200ms"},
  };
}

// A file that differs from the running one only in `key`.
Config changedOnly(const std::string& key, const Values& base, const Values& changed) {
  Values values = base;
  values[key] = changed.at(key);
  return load(values);
}

TEST(ReloadPlan, KeepsEachRestartOnlyKeyAndNothingElse) {
  std::string module = tempFile("module.so", "never loaded");
  Values changed = changedValues(tempFile("other.so", "never loaded"));
  Config running = load(base(module));
  std::set<std::string> fileKeys = keysTheFileTakes();
  for (const std::string& key : restartOnlyKeys()) {
    EXPECT_TRUE(fileKeys.contains(key)) << key << " is not a key of the config file";
    ASSERT_TRUE(changed.contains(key)) << key << ": give it a changed value in changedValues()";
    ReloadPlan plan = planReload(running, changedOnly(key, base(module), changed));
    EXPECT_EQ(plan.kept, std::vector<std::string>{key});
    EXPECT_TRUE(planReload(running, plan.next).kept.empty()) << key << " was named but not put back";
    EXPECT_TRUE(plan.refusal.empty()) << key << ": " << plan.refusal;
  }
}

TEST(ReloadPlan, AnyOtherKeyChangesOnReload) {
  std::string module = tempFile("module.so", "never loaded");
  Values changed = changedValues(tempFile("other.so", "never loaded"));
  Config running = load(base(module));
  std::vector<std::string> restartOnly = restartOnlyKeys();
  std::set<std::string> fileKeys = keysTheFileTakes();
  ASSERT_GT(fileKeys.size(), restartOnly.size() + 20) << "the keys the file takes were not all found";
  for (const std::string& key : fileKeys) {
    if (std::find(restartOnly.begin(), restartOnly.end(), key) != restartOnly.end()) continue;
    if (!changed.contains(key)) {
      ADD_FAILURE() << key << ": give it a changed value in changedValues()";
      continue;
    }
    ReloadPlan plan = planReload(running, changedOnly(key, base(module), changed));
    EXPECT_TRUE(plan.kept.empty()) << "changing " << key << " made the plan keep " << plan.kept.front();
    EXPECT_TRUE(plan.refusal.empty()) << key << ": " << plan.refusal;
  }
}

TEST(ReloadPlan, PutsBackWhatChangesOnlyOnRestart) {
  Config running;
  running.name = "edge";
  running.user = "nobody";
  Config next = running;
  next.name = "renamed";
  next.pidFile = "/tmp/other.pid";
  next.maxWorkers = 8;
  next.metricsListen = "127.0.0.1:9999";
  next.profile.dir = "/tmp/elsewhere";
  next.profile.http = true;
  next.user = "root";
  next.group = "adm";
  next.workers = 3;
  next.worker.maxConnections = 7;
  next.worker.limits.idleTimeout = std::chrono::seconds(5);
  next.metricsNamespace = "tcp_server_demo2";
  ReloadPlan plan = planReload(running, next);
  EXPECT_EQ(plan.kept, (std::vector<std::string>{"name", "pid_file", "max_workers", "metrics.listen", "profile.dir",
                                                  "profile.http", "user", "group"}));
  EXPECT_EQ(plan.next.name, "edge");
  EXPECT_EQ(plan.next.pidFile, running.pidFile);
  EXPECT_EQ(plan.next.maxWorkers, running.maxWorkers);
  EXPECT_EQ(plan.next.metricsListen, running.metricsListen);
  EXPECT_EQ(plan.next.profile.dir, running.profile.dir);
  EXPECT_FALSE(plan.next.profile.http);
  EXPECT_EQ(plan.next.user, "nobody");
  EXPECT_EQ(plan.next.group, "");
  // What a reload is for goes through.
  EXPECT_EQ(plan.next.workers, 3u);
  EXPECT_EQ(plan.next.worker.maxConnections, 7u);
  EXPECT_EQ(plan.next.worker.limits.idleTimeout, std::chrono::seconds(5));
  EXPECT_EQ(plan.next.metricsNamespace, "tcp_server_demo2");
  EXPECT_TRUE(plan.refusal.empty());
}

TEST(ReloadPlan, AnUnchangedFileKeepsNothingBack) {
  Config running;
  ReloadPlan plan = planReload(running, running);
  EXPECT_TRUE(plan.kept.empty());
  EXPECT_TRUE(plan.refusal.empty());
}

// max_workers sizes the stats segment, so the running one bounds the new workers.
TEST(ReloadPlan, RefusesMoreWorkersThanTheRunningMaxWorkers) {
  Config running;
  running.maxWorkers = 4;
  Config next = running;
  next.maxWorkers = 16;
  next.workers = 8;
  ReloadPlan plan = planReload(running, next);
  EXPECT_EQ(plan.refusal, "workers 8 exceeds max_workers 4");
}

}  // namespace
}  // namespace tcpfork
