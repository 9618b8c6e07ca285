#include "master/yaml_json.h"

#include <charconv>
#include <cmath>
#include <regex>
#include <stdexcept>

namespace tcpfork {
namespace {

nlohmann::json plainScalar(const std::string& text) {
  // YAML 1.2 core schema (tag resolution for plain scalars).
  static const std::regex kNull("null|Null|NULL|~|");
  static const std::regex kTrue("true|True|TRUE");
  static const std::regex kFalse("false|False|FALSE");
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(text, kNull)) return nullptr;
  if (std::regex_match(text, kTrue)) return true;
  if (std::regex_match(text, kFalse)) return false;
  if (std::regex_match(text, kInt)) {
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    int64_t value = 0;
    if (std::from_chars(begin, text.data() + text.size(), value).ec == std::errc()) return value;
    uint64_t big = 0;
    if (std::from_chars(begin, text.data() + text.size(), big).ec == std::errc()) return big;
    return text;  // beyond 64 bits: kept exact, as text
  }
  if (std::regex_match(text, kFloat)) {
    double value = 0;
    try {
      value = std::stod(text);
    } catch (const std::out_of_range&) {
      throw std::invalid_argument("'" + text + "' is out of a float's range");
    }
    if (!std::isfinite(value)) throw std::invalid_argument("'" + text + "' is out of a float's range");
    return value;
  }
  return text;
}

}  // namespace

nlohmann::json yamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? nlohmann::json(node.Scalar()) : plainScalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(yamlToJson(item));
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) throw std::invalid_argument("a mapping key must be a plain value");
        out[entry.first.Scalar()] = yamlToJson(entry.second);
      }
      return out;
    }
  }
  return nullptr;
}

}  // namespace tcpfork
