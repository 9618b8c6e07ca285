#pragma once
// handler.config is any YAML; a module's init gets it as JSON text. YAML's
// core schema decides what a plain scalar is (null, true/false, an integer, a
// float, else a string); a quoted scalar is always a string.
//
// JSON has no aliases: each one is written out in full. The conversion is
// bounded as it goes, not after: an alias inside the node it names (a loop)
// is refused where it is met, and so is nesting past maxDepth or output past
// maxBytes, so a few lines of nested aliases (each level repeating the one
// below ten times: "billion laughs") cost at most maxBytes of work.

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace tcpfork {

struct YamlJsonLimits {
  size_t maxDepth = 64;         // collections inside collections
  size_t maxBytes = 64 * 1024;  // of the compact JSON text (dump())
};

// What JSON cannot hold (a mapping key that is not a scalar, a float that is
// not finite), or what passes a limit. Says where: the line of the mapping
// key or sequence item at fault, and its path below the converted node
// (".x.y[2]"; empty for the node itself).
class YamlJsonError : public std::invalid_argument {
 public:
  YamlJsonError(const std::string& why, YAML::Mark mark, std::string path)
      : std::invalid_argument(why), mark_(mark), path_(std::move(path)) {}
  const YAML::Mark& mark() const { return mark_; }
  const std::string& path() const { return path_; }

 private:
  YAML::Mark mark_;
  std::string path_;
};

// Throws YamlJsonError.
nlohmann::json yamlToJson(const YAML::Node& node, const YamlJsonLimits& limits = {});

}  // namespace tcpfork
