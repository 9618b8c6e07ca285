#pragma once
// handler.config is any YAML; a module's init gets it as JSON text. YAML's
// core schema decides what a plain scalar is (null, true/false, an integer, a
// float, else a string); a quoted scalar is always a string.

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

namespace tcpfork {

// Throws std::invalid_argument for what JSON cannot hold (a mapping key that
// is not a scalar, a float that is not finite).
nlohmann::json yamlToJson(const YAML::Node& node);

}  // namespace tcpfork
