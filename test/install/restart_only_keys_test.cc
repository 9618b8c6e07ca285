// The keys a reload keeps at their running values are listed once, in the
// code (restartOnlyKeys(), the list planReload() keeps by). docs/reload-and-upgrade.md's
// Reload section, the man page's HUP paragraph and the comments of
// deploy/tcpfork.yaml are read here and held to it, so a key added to the
// code and not to the docs, or the other way round, fails.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "master/config/reload_plan.h"
#include "test/integration/process.h"

namespace tcpfork::test {
namespace {

// The docs' one sentence on it ends with this.
const std::string kMarker = "change only on restart";

std::string sourceFile(const std::string& path) { return readFile(std::string(TCPFORK_SOURCE_DIR) + "/" + path); }

// Line breaks and tabs as single spaces, so a sentence reads as one line.
std::string flattened(const std::string& text) {
  std::string flat;
  for (char ch : text) {
    bool space = ch == ' ' || ch == '\n' || ch == '\t';
    if (space && (flat.empty() || flat.back() == ' ')) continue;
    flat += space ? ' ' : ch;
  }
  return flat;
}

// The sentence of `text` that ends in kMarker, from where `anchor` (a
// heading) is found; it must be the only one there.
std::string restartSentence(const std::string& text, const std::string& anchor) {
  size_t from = text.find(anchor);
  if (from == std::string::npos) {
    ADD_FAILURE() << "'" << anchor << "' not found";
    return "";
  }
  std::string flat = flattened(text.substr(from));
  size_t end = flat.find(kMarker);
  if (end == std::string::npos) {
    ADD_FAILURE() << "no sentence ending in '" << kMarker << "' after '" << anchor << "'";
    return "";
  }
  EXPECT_EQ(flat.find(kMarker, end + 1), std::string::npos) << "more than one sentence says '" << kMarker << "'";
  size_t begin = flat.rfind(". ", end);
  begin = begin == std::string::npos ? 0 : begin + 2;
  return flat.substr(begin, end - begin);
}

// The names `text` marks with `delimiter` on both sides (`name`, *name*), in order.
std::vector<std::string> marked(const std::string& text, char delimiter) {
  std::vector<std::string> names;
  for (size_t open = text.find(delimiter); open != std::string::npos; open = text.find(delimiter, open)) {
    size_t close = text.find(delimiter, open + 1);
    if (close == std::string::npos) break;
    names.push_back(text.substr(open + 1, close - open - 1));
    open = close + 1;
  }
  return names;
}

TEST(RestartOnlyKeys, TheHandbookListsExactlyThem) {
  std::string sentence = restartSentence(sourceFile("docs/reload-and-upgrade.md"), "\n## Reload\n");
  EXPECT_EQ(marked(sentence, '`'), restartOnlyKeys()) << sentence;
}

TEST(RestartOnlyKeys, TheManPageListsExactlyThem) {
  std::string sentence = restartSentence(sourceFile("docs/man/tcpfork.8.scd"), "\n*HUP* (*-s reload*)\n");
  EXPECT_EQ(marked(sentence, '*'), restartOnlyKeys()) << sentence;
}

// deploy/tcpfork.yaml

size_t indentOf(const std::string& line) { return std::min(line.find_first_not_of(' '), line.size()); }
bool isComment(const std::string& line) { return indentOf(line) < line.size() && line[indentOf(line)] == '#'; }

// Whether `line` sets `key`, as "key: value" or commented out as "# key: value".
bool setsKey(const std::string& line, const std::string& key) {
  size_t at = indentOf(line);
  if (at < line.size() && line[at] == '#') at = std::min(line.find_first_not_of(' ', at + 1), line.size());
  return line.compare(at, key.size() + 1, key + ":") == 0 &&
         (at + key.size() + 1 == line.size() || line[at + key.size() + 1] == ' ');
}

// The lines that set each level of `dotted` ("metrics.listen": the line of
// metrics, then of listen inside it), or fewer when one is missing.
std::vector<size_t> keyLines(const std::vector<std::string>& lines, const std::string& dotted) {
  std::vector<size_t> found;
  std::istringstream parts(dotted);
  size_t from = 0;
  for (std::string part; std::getline(parts, part, '.');) {
    std::optional<size_t> parentIndent;
    if (!found.empty()) parentIndent = indentOf(lines[found.back()]);
    std::optional<size_t> at;
    for (size_t i = from; i < lines.size() && !at; ++i) {
      size_t indent = indentOf(lines[i]);
      if (parentIndent && indent <= *parentIndent && !isComment(lines[i]) && indent < lines[i].size()) break;
      if ((parentIndent ? indent > *parentIndent : indent == 0) && setsKey(lines[i], part)) at = i;
    }
    if (!at) break;
    found.push_back(*at);
    from = *at + 1;
  }
  return found;
}

// What the file says about a key, as one line of prose: the comment ending
// its line and the comment lines right above it; for the first key inside a
// mapping, the mapping's comment too.
std::string commentOf(const std::vector<std::string>& lines, const std::vector<size_t>& chain) {
  std::string comment;
  auto text = [](const std::string& line) { return line.substr(line.find('#') + 1) + "\n"; };
  for (size_t level = chain.size(); level-- > 0;) {
    const std::string& line = lines[chain[level]];
    if (line.find('#') != std::string::npos) comment += text(line);
    size_t above = chain[level];
    while (above > 0 && isComment(lines[above - 1])) comment = text(lines[--above]) + comment;
    if (level == 0 || above == 0 || above - 1 != chain[level - 1]) break;
  }
  return flattened(comment);
}

TEST(RestartOnlyKeys, TheExampleConfigSaysEachChangesOnlyOnRestart) {
  std::vector<std::string> lines;
  std::istringstream in(sourceFile("deploy/tcpfork.yaml"));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (const std::string& key : restartOnlyKeys()) {
    std::vector<size_t> chain = keyLines(lines, key);
    size_t levels = size_t(std::count(key.begin(), key.end(), '.')) + 1;
    if (chain.size() != levels) {
      ADD_FAILURE() << key << " is not in deploy/tcpfork.yaml (set, or commented out as '# " << key << ": ...')";
      continue;
    }
    std::string comment = commentOf(lines, chain);
    std::string lower = comment;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    EXPECT_NE(lower.find("only on restart"), std::string::npos)
        << key << " (line " << chain.back() + 1 << ") has no comment saying it changes only on restart: '"
        << comment << "'";
  }
}

}  // namespace
}  // namespace tcpfork::test
