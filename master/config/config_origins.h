#pragma once
// ConfigOrigins: where each value of a loaded Config came from (a line of
// the file, a command-line flag, or the built-in default), so that an error
// found by comparing keys cites FILE:LINE as one found while reading a key
// does. Built by loadConfig() and read by its checks; lives only for the load.

#include <initializer_list>
#include <map>
#include <string>

namespace tcpfork {

// Dotted key ("metrics.listen") -> the 1-based line the file sets it on.
using KeyLines = std::map<std::string, unsigned>;

class ConfigOrigins {
 public:
  // `file` empty: built-in defaults and flags only.
  ConfigOrigins(std::string file, KeyLines lines) : file_(std::move(file)), lines_(std::move(lines)) {}

  // `key` was set by command-line `flag` ("--workers"), over any line.
  void setFlag(const std::string& key, std::string flag) { flags_[key] = std::move(flag); }

  // The value `text` of the key at fault, saying where it came from unless
  // the message's FILE:LINE is its own line: "9 (set by --workers)",
  // "67108864 (the default: the file does not set it)".
  std::string value(const std::string& key, const std::string& text) const;
  // A key the one at fault is compared with, its value and where it came
  // from: "max_rss (1073741824, line 3)", "max_workers (64, the default)".
  std::string compared(const std::string& key, const std::string& text) const;

  // Throws ConfigError("FILE:LINE: key: why"). LINE is where the file sets
  // `key`; when it does not (a default or a flag), the line of the first of
  // `related` the file sets, which `why` names with compared(); with neither,
  // "FILE: key: why" ("config: key: why" without a file).
  [[noreturn]] void fail(const std::string& key, const std::string& why,
                         std::initializer_list<const char*> related = {}) const;

 private:
  // The line the file sets `key` on, unless a flag overrides it; 0 = none.
  unsigned lineOf(const std::string& key) const;

  std::string file_;
  KeyLines lines_;
  std::map<std::string, std::string> flags_;
};

}  // namespace tcpfork
