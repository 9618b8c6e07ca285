#pragma once
// The configuration's rules that span keys: checked once every value is
// known, from the file and the command line alike (a flag's value must pass
// them as well as the file's). Each failure names its key, the keys it
// compares with, and where each value came from (ConfigOrigins: file and
// line, or the flag), and throws ConfigError.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "master/config/config.h"
#include "master/config/config_origins.h"

namespace tcpfork {

void checkRulesAcrossKeys(const Config& c, const ConfigOrigins& o);

// The first entry of `listen` that does not parse, or that names the same
// address as an earlier one (two sockets on one address would split its
// connections between unrelated workers).
struct ListenProblem {
  size_t entry;
  std::string why;
};
std::optional<ListenProblem> listenProblem(const std::vector<std::string>& listen);

}  // namespace tcpfork
