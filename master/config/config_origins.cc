#include "master/config/config_origins.h"

#include <fmt/format.h>

#include "master/config/config.h"

namespace tcpfork {

unsigned ConfigOrigins::lineOf(const std::string& key) const {
  if (flags_.contains(key)) return 0;
  auto it = lines_.find(key);
  return it == lines_.end() ? 0 : it->second;
}

std::string ConfigOrigins::value(const std::string& key, const std::string& text) const {
  if (auto flag = flags_.find(key); flag != flags_.end()) return fmt::format("{} (set by {})", text, flag->second);
  if (lineOf(key) > 0) return text;  // the message's own FILE:LINE
  return text + (file_.empty() ? " (the default)" : " (the default: the file does not set it)");
}

std::string ConfigOrigins::compared(const std::string& key, const std::string& text) const {
  if (auto flag = flags_.find(key); flag != flags_.end()) {
    return fmt::format("{} ({}, set by {})", key, text, flag->second);
  }
  if (unsigned line = lineOf(key); line > 0) return fmt::format("{} ({}, line {})", key, text, line);
  return fmt::format("{} ({}, the default)", key, text);
}

void ConfigOrigins::fail(const std::string& key, const std::string& why,
                         std::initializer_list<const char*> related) const {
  std::string source = file_.empty() ? "config" : file_;
  unsigned line = lineOf(key);
  for (auto it = related.begin(); line == 0 && it != related.end(); ++it) line = lineOf(*it);
  if (line == 0) throw ConfigError(fmt::format("{}: {}: {}", source, key, why));
  throw ConfigError(fmt::format("{}:{}: {}: {}", source, line, key, why));
}

}  // namespace tcpfork
