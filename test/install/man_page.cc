#include "test/install/man_page.h"

#include <regex>
#include <sstream>

namespace tcpfork::test {

std::string manPagePath(const std::string& page) {
  return std::string(TCPFORK_MAN_DIR) + "/man" + page.substr(page.rfind('.') + 1) + "/" + page;
}

namespace {

// ".SH OPTIONS" and ".SH \"EXIT STATUS\"" name sections "OPTIONS" and "EXIT STATUS".
std::string sectionTitle(const std::string& line) {
  std::string title = line.substr(4);
  if (title.size() >= 2 && title.front() == '"' && title.back() == '"') title = title.substr(1, title.size() - 2);
  return title;
}

}  // namespace

std::vector<std::string> manSectionTitles(const std::string& roff) {
  std::vector<std::string> titles;
  std::istringstream in(roff);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(".SH ", 0) == 0) titles.push_back(sectionTitle(line));
  }
  return titles;
}

std::string manSection(const std::string& roff, const std::string& title) {
  std::string text;
  bool inside = false;
  std::istringstream in(roff);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(".SH ", 0) == 0) {
      inside = sectionTitle(line) == title;
      continue;
    }
    if (inside) text += line + "\n";
  }
  return std::regex_replace(text, std::regex(R"(\\f[BIRP]|\\&)"), "");
}

ToolRun renderManPage(const std::string& path) {
  // Only stderr reaches the log: the rendered page itself is of no interest.
  return runCommand({"/bin/sh", "-c",
                     "LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \"$1\" >/dev/null",
                     "sh", path});
}

}  // namespace tcpfork::test
