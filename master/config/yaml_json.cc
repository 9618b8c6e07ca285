#include "master/config/yaml_json.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <string_view>
#include <vector>

namespace tcpfork {
namespace {

// The core schema's patterns are matched by hand: std::regex recurses once
// per character, and a scalar of some 100,000 digits overflows the stack.
bool skipDigits(std::string_view text, size_t& i) {
  size_t start = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  return i > start;
}

size_t signLength(std::string_view text) { return !text.empty() && (text[0] == '-' || text[0] == '+') ? 1 : 0; }

// [-+]?[0-9]+
bool isInteger(std::string_view text) {
  size_t i = signLength(text);
  return skipDigits(text, i) && i == text.size();
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool isFloat(std::string_view text) {
  size_t i = signLength(text);
  if (i < text.size() && text[i] == '.') {
    if (!skipDigits(text, ++i)) return false;
  } else {
    if (!skipDigits(text, i)) return false;
    if (i < text.size() && text[i] == '.') skipDigits(text, ++i);
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
    if (!skipDigits(text, i)) return false;
  }
  return i == text.size();
}

// YAML 1.2 core schema (tag resolution for plain scalars). Throws
// std::invalid_argument.
nlohmann::json plainScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (isInteger(text)) {
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    int64_t value = 0;
    if (std::from_chars(begin, text.data() + text.size(), value).ec == std::errc()) return value;
    uint64_t big = 0;
    if (std::from_chars(begin, text.data() + text.size(), big).ec == std::errc()) return big;
    return text;  // beyond 64 bits: kept exact, as text
  }
  if (isFloat(text)) {
    double value = 0;
    try {
      value = std::stod(text);
    } catch (const std::out_of_range&) {
      value = HUGE_VAL;
    }
    if (!std::isfinite(value)) {
      std::string_view shown = std::string_view(text).substr(0, 40);
      throw std::invalid_argument(
          fmt::format("'{}{}' is out of a float's range", shown, shown.size() < text.size() ? "..." : ""));
    }
    return value;
  }
  return text;
}

// One conversion: the collections open above the current node (to tell a
// loop from an alias used twice side by side), the path to it and the JSON
// bytes written so far. The byte count is exact for what dump() writes,
// except that a repeated mapping key counts each of its values (JSON keeps
// the last).
class Converter {
 public:
  explicit Converter(const YamlJsonLimits& limits) : limits_(limits) {}

  nlohmann::json convert(const YAML::Node& node, const YAML::Mark& where) {
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return leaf(nullptr, where);
      case YAML::NodeType::Scalar:
        try {
          return leaf(node.Tag() == "!" ? nlohmann::json(node.Scalar()) : plainScalar(node.Scalar()), where);
        } catch (const YamlJsonError&) {
          throw;
        } catch (const std::invalid_argument& e) {
          fail(e.what(), where);
        }
      case YAML::NodeType::Sequence: {
        Open open(*this, node, where);
        nlohmann::json out = nlohmann::json::array();
        spend(2, where);  // []
        size_t i = 0;
        for (const auto& item : node) {
          path_.push_back(fmt::format("[{}]", i));
          if (i++ > 0) spend(1, item.Mark());  // ,
          out.push_back(convert(item, item.Mark()));
          path_.pop_back();
        }
        return out;
      }
      case YAML::NodeType::Map: {
        Open open(*this, node, where);
        nlohmann::json out = nlohmann::json::object();
        spend(2, where);  // {}
        bool first = true;
        for (const auto& entry : node) {
          const YAML::Mark& at = entry.first.Mark();
          if (!entry.first.IsScalar()) fail("a mapping key must be a plain value", at);
          const std::string& key = entry.first.Scalar();
          path_.push_back("." + key);
          spend((first ? 0 : 1) + dumpedSize(key, at) + 1, at);  // ,"key":
          first = false;
          out[key] = convert(entry.second, at);
          path_.pop_back();
        }
        return out;
      }
    }
    return nullptr;
  }

 private:
  // A collection being converted, for as long as it is.
  class Open {
   public:
    Open(Converter& c, const YAML::Node& node, const YAML::Mark& where) : c_(c) {
      for (const YAML::Node& above : c_.open_) {
        if (above.is(node)) c_.fail("an alias refers to a node that contains it (a loop)", where);
      }
      if (c_.open_.size() >= c_.limits_.maxDepth) {
        c_.fail(fmt::format("nested deeper than {} levels", c_.limits_.maxDepth), where);
      }
      c_.open_.push_back(node);
    }
    ~Open() { c_.open_.pop_back(); }
    Open(const Open&) = delete;
    Open& operator=(const Open&) = delete;

   private:
    Converter& c_;
  };

  nlohmann::json leaf(nlohmann::json value, const YAML::Mark& where) {
    spend(dumpedSize(value, where), where);
    return value;
  }

  size_t dumpedSize(const nlohmann::json& value, const YAML::Mark& where) const {
    try {
      return value.dump().size();
    } catch (const nlohmann::json::type_error&) {
      fail("not UTF-8 text (JSON is UTF-8)", where);
    }
  }

  void spend(size_t bytes, const YAML::Mark& where) {
    bytes_ += bytes;
    if (bytes_ > limits_.maxBytes) {
      fail(fmt::format("more than {} bytes as JSON, counting each use of an alias in full", limits_.maxBytes), where);
    }
  }

  [[noreturn]] void fail(const std::string& why, const YAML::Mark& where) const {
    std::string path;
    for (const auto& step : path_) path += step;
    throw YamlJsonError(why, where, path);
  }

  const YamlJsonLimits& limits_;
  std::vector<YAML::Node> open_;
  std::vector<std::string> path_;
  size_t bytes_ = 0;
};

}  // namespace

nlohmann::json yamlToJson(const YAML::Node& node, const YamlJsonLimits& limits) {
  return Converter(limits).convert(node, node.Mark());
}

}  // namespace tcpfork
