#pragma once
// ConfigReader: walks one YAML document of the config, typing its values and
// failing with the file, line and key at fault (ConfigError), so every
// message a bad config gets names what to fix. An unknown or repeated key is
// an error: a typo must not fall back to a default unnoticed. It records the
// line of every key it walks, for the checks that compare keys afterwards.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "contract/worker_setting_table.h"
#include "master/config/config.h"
#include "master/config/config_origins.h"

namespace tcpfork {

class ConfigReader {
 public:
  explicit ConfigReader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& why) const;
  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& key, const std::string& why) const;

  using Handlers = std::map<std::string, std::function<void(const YAML::Node&, const std::string&)>>;

  // Calls the handler of each key in `map`, recording the key's line under
  // its dotted name (prefix.key); an unknown key is an error that lists the
  // known ones.
  void forEach(const YAML::Node& map, const std::string& prefix, const Handlers& handlers);
  // Every key forEach has walked, and its line.
  const KeyLines& lines() const { return lines_; }

  // At most kMaxScalarBytes: no key takes a longer value (paths end at
  // PATH_MAX), and an error quoting it stays one readable line.
  std::string scalar(const YAML::Node& node, const std::string& key) const;
  static constexpr size_t kMaxScalarBytes = 4096;
  uint64_t integer(const YAML::Node& node, const std::string& key, uint64_t min, uint64_t max) const;
  double number(const YAML::Node& node, const std::string& key, double min, double max) const;
  bool boolean(const YAML::Node& node, const std::string& key) const;
  // Sizes with a unit: 512KiB, 64MiB, 2GiB (parseBytes).
  uint64_t bytes(const YAML::Node& node, const std::string& key, uint64_t min, uint64_t max) const;
  // Every duration has a ceiling: beyond it a deadline computed as now + value
  // would overflow (or simply never come), which is always a typo.
  Millis duration(const YAML::Node& node, const std::string& key, Millis min, Millis max) const;
  // A worker setting's value, checked as the worker's command line checks it
  // (parseSetting).
  SettingValue setting(const YAML::Node& node, const std::string& key, const WorkerSetting& setting) const;

 private:
  std::string file_;
  KeyLines lines_;
};

}  // namespace tcpfork
