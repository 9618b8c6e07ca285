#include "master/config/config_reader.h"

#include <fmt/format.h>

#include <stdexcept>

namespace tcpfork {

void ConfigReader::fail(const YAML::Node& node, const std::string& key, const std::string& why) const {
  fail(node.Mark(), key, why);
}

void ConfigReader::fail(const YAML::Mark& mark, const std::string& key, const std::string& why) const {
  if (mark.is_null()) throw ConfigError(fmt::format("{}: {}: {}", file_, key, why));
  throw ConfigError(fmt::format("{}:{}: {}: {}", file_, mark.line + 1, key, why));
}

void ConfigReader::forEach(const YAML::Node& map, const std::string& prefix, const Handlers& handlers) {
  if (!map.IsMap()) fail(map, prefix.empty() ? "config" : prefix, "expected a mapping of keys");
  // yaml-cpp keeps every entry of a repeated key; last-one-wins would hide an edit.
  std::map<std::string, YAML::Mark> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) fail(entry.first, prefix.empty() ? "config" : prefix, "keys must be plain names");
    std::string key = entry.first.Scalar();
    std::string full = prefix.empty() ? key : prefix + "." + key;
    if (auto [first, fresh] = seen.emplace(key, entry.first.Mark()); !fresh) {
      fail(entry.first, full,
           first->second.is_null() ? "appears twice" : fmt::format("appears twice (first on line {})", first->second.line + 1));
    }
    auto it = handlers.find(key);
    if (it == handlers.end()) {
      std::string known;
      for (const auto& h : handlers) known += (known.empty() ? "" : ", ") + h.first;
      fail(entry.first, full, fmt::format("unknown key (known here: {})", known));
    }
    if (entry.second.IsNull()) fail(entry.first, full, "has no value");
    if (!entry.first.Mark().is_null()) lines_[full] = unsigned(entry.first.Mark().line + 1);
    it->second(entry.second, full);
  }
}

std::string ConfigReader::scalar(const YAML::Node& node, const std::string& key) const {
  if (!node.IsScalar()) fail(node, key, "expected a single value");
  if (node.Scalar().size() > kMaxScalarBytes) {
    fail(node, key, fmt::format("a value of {} bytes; at most {}", node.Scalar().size(), kMaxScalarBytes));
  }
  return node.Scalar();
}

uint64_t ConfigReader::integer(const YAML::Node& node, const std::string& key, uint64_t min, uint64_t max) const {
  std::string text = scalar(node, key);
  try {
    return parseWholeNumber(text, min, max);
  } catch (const std::invalid_argument& e) {
    fail(node, key, e.what());
  }
}

double ConfigReader::number(const YAML::Node& node, const std::string& key, double min, double max) const {
  std::string text = scalar(node, key);
  try {
    size_t used = 0;
    double value = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    if (value < min || value > max) fail(node, key, fmt::format("{} is out of range {}..{}", value, min, max));
    return value;
  } catch (const std::logic_error&) {
    fail(node, key, fmt::format("expected a number, got '{}'", text));
  }
}

bool ConfigReader::boolean(const YAML::Node& node, const std::string& key) const {
  std::string text = scalar(node, key);
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  fail(node, key, fmt::format("expected true or false, got '{}'", text));
}

uint64_t ConfigReader::bytes(const YAML::Node& node, const std::string& key, uint64_t min, uint64_t max) const {
  std::string text = scalar(node, key);
  try {
    return parseBytes(text, min, max);
  } catch (const std::invalid_argument& e) {
    fail(node, key, e.what());
  }
}

Millis ConfigReader::duration(const YAML::Node& node, const std::string& key, Millis min, Millis max) const {
  std::string text = scalar(node, key);
  try {
    return parseDuration(text, min, max);
  } catch (const std::invalid_argument& e) {
    fail(node, key, e.what());
  }
}

SettingValue ConfigReader::setting(const YAML::Node& node, const std::string& key, const WorkerSetting& setting) const {
  std::string text = scalar(node, key);
  try {
    return parseSetting(setting, text);
  } catch (const std::invalid_argument& e) {
    fail(node, key, e.what());
  }
}

}  // namespace tcpfork
