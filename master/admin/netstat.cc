#include "master/admin/netstat.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace tcpfork {
namespace {

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at < line.size()) {
    size_t end = line.find(' ', at);
    if (end == std::string_view::npos) end = line.size();
    if (end > at) out.push_back(line.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

}  // namespace

std::optional<ListenCounters> parseListenCounters(std::string_view netstat) {
  std::optional<uint64_t> overflows, drops;
  std::vector<std::string_view> names;
  size_t at = 0;
  while (at < netstat.size()) {
    size_t end = netstat.find('\n', at);
    if (end == std::string_view::npos) end = netstat.size();
    std::string_view line = netstat.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with("TcpExt:")) continue;
    std::vector<std::string_view> fields = words(line);
    // The first TcpExt line names the fields, the second holds their values.
    if (names.empty()) {
      names = std::move(fields);
      continue;
    }
    for (size_t i = 1; i < fields.size() && i < names.size(); ++i) {
      uint64_t value = 0;
      auto [p, ec] = std::from_chars(fields[i].data(), fields[i].data() + fields[i].size(), value);
      if (ec != std::errc()) continue;
      if (names[i] == "ListenOverflows") overflows = value;
      if (names[i] == "ListenDrops") drops = value;
    }
    names.clear();
  }
  if (!overflows || !drops) return {};
  return ListenCounters{*overflows, *drops};
}

std::optional<ListenCounters> readListenCounters(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  return parseListenCounters(text.str());
}

}  // namespace tcpfork
