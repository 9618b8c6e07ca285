// Each binary's man page (generated from docs/man/*.scd) against its real
// --help: every option the binary lists is documented under OPTIONS (a
// subcommand's options under its own subsection), and every long option the
// page documents exists. Then the page renders without a warning. And
// tcpfork.yaml(5) against the handbook's configuration reference it is made
// from.

#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "test/install/man_page.h"
#include "test/integration/process.h"

namespace tcpfork::test {
namespace {

struct Page {
  std::string binary;
  std::string page;
  std::vector<std::string> sections;  // in order
};

// Options a --help lists (the first column of each "  -c,--config TEXT ..."
// line), and the subcommands under "Subcommands:".
struct Help {
  std::set<std::string> options;
  std::vector<std::string> subcommands;
};

Help parseHelp(const std::string& text) {
  static const std::regex kOptionLine(R"(^  (-[-\w]+(?:,-[-\w]+)*)(?: |$))");
  static const std::regex kSubcommandLine(R"(^  (\w[-\w]*) )");
  Help help;
  bool inSubcommands = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != ' ') {
      inSubcommands = line == "Subcommands:";
      continue;
    }
    std::smatch m;
    if (std::regex_search(line, m, kOptionLine)) {
      std::istringstream names(m[1].str());
      for (std::string name; std::getline(names, name, ',');) help.options.insert(name);
    } else if (inSubcommands && std::regex_search(line, m, kSubcommandLine)) {
      help.subcommands.push_back(m[1]);
    }
  }
  return help;
}

Help helpOf(const std::vector<std::string>& args) {
  ToolRun run = runCommand(args, 10s);
  EXPECT_EQ(run.exitCode, 0) << run.output;
  Help help = parseHelp(run.output);
  EXPECT_GE(help.options.size(), 2u) << "no options found in the --help of " << args[0] << ":\n" << run.output;
  return help;
}

// True when `option` stands in `text` as a word of its own ("--name", not "--name-x" or "x--name").
bool mentions(const std::string& text, const std::string& option) {
  const std::regex word("(^|[^-\\w])" + option + "($|[^-\\w])");
  return std::regex_search(text, word);
}

// Within OPTIONS: the text before the first subsection (.SS), or of subsection `name`.
std::string subsection(const std::string& options, const std::string& name) {
  std::string text;
  std::string current;
  std::istringstream in(options);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(".SS ", 0) == 0) {
      current = line.substr(4);
      continue;
    }
    if (current == name) text += line + "\n";
  }
  return text;
}

// Names the test parameter in test output.
void PrintTo(const Page& p, std::ostream* os) { *os << p.page; }

class ManPage : public ::testing::TestWithParam<Page> {};

TEST_P(ManPage, DocumentsEveryOptionOfHelp) {
  const Page& p = GetParam();
  std::string roff = readFile(manPagePath(p.page));
  ASSERT_FALSE(roff.empty()) << "no generated man page " << manPagePath(p.page);
  std::string options = manSection(roff, "OPTIONS");
  ASSERT_FALSE(options.empty()) << p.page << " has no OPTIONS section";

  std::string bin = binary(p.binary);
  Help top = helpOf({bin, "--help"});
  std::set<std::string> all = top.options;
  for (const auto& option : top.options) {
    EXPECT_TRUE(mentions(subsection(options, ""), option))
        << p.page << ": OPTIONS does not document " << option << " (listed by " << p.binary << " --help)";
  }
  for (const auto& sub : top.subcommands) {
    Help help = helpOf({bin, sub, "--help"});
    std::string text = subsection(options, sub);
    EXPECT_FALSE(text.empty()) << p.page << ": OPTIONS has no subsection for the subcommand " << sub;
    for (const auto& option : help.options) {
      // --help of a subcommand repeats -h,--help, documented once above.
      if (top.options.count(option) > 0) continue;
      EXPECT_TRUE(mentions(text, option)) << p.page << ": OPTIONS/" << sub << " does not document " << option
                                          << " (listed by " << p.binary << " " << sub << " --help)";
      all.insert(option);
    }
  }
  EXPECT_TRUE(all.count("--help") && all.count("--version")) << p.binary << " --help lists no --help or --version";

  // The other way: a long option the page documents must still exist.
  std::regex longOption(R"((^|[^-\w])(--[a-z][-a-z0-9]*))");
  for (std::sregex_iterator it(options.begin(), options.end(), longOption), end; it != end; ++it) {
    std::string option = (*it)[2];
    EXPECT_TRUE(all.count(option) > 0) << p.page << " documents " << option << ", which " << p.binary
                                       << " --help does not list";
  }
}

TEST_P(ManPage, HasTheSectionsOfAManPage) {
  const Page& p = GetParam();
  EXPECT_EQ(manSectionTitles(readFile(manPagePath(p.page))), p.sections) << p.page;
  std::string name = manSection(readFile(manPagePath(p.page)), "NAME");
  EXPECT_NE(name.find(p.binary + " - "), std::string::npos) << p.page << " NAME: " << name;
}

TEST_P(ManPage, RendersWithoutWarnings) {
  ToolRun run = renderManPage(manPagePath(GetParam().page));
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(run.output, "") << "man --warnings on " << GetParam().page;
}

TEST(ManPage, TcpforkDocumentsEverySignalAndAction) {
  std::string signals = manSection(readFile(manPagePath("tcpfork.8")), "SIGNALS");
  for (const char* name : {"HUP", "TERM", "INT", "QUIT", "USR1", "USR2", "TTIN", "TTOU", "TRAP", "CHLD"}) {
    EXPECT_TRUE(mentions(signals, name)) << "SIGNALS does not mention " << name;
  }
  for (const char* action : {"reload", "stop", "quit", "reopen", "profile", "upgrade"}) {
    EXPECT_TRUE(mentions(signals, std::string("-s ") + action)) << "SIGNALS does not mention -s " << action;
  }
}

// tcpfork.yaml(5) is made from docs/configuration.md when the man pages
// are built: the page holds each key block of the handbook (whose keys the
// docs tests hold to the parser) as an entry of KEYS, in the same order,
// with the block's fields.
std::vector<std::string> handbookKeys() {
  static const std::regex kKey(R"(^### `([a-z_.]+)`$)");
  std::vector<std::string> keys;
  std::istringstream in(readFile(std::string(TCPFORK_SOURCE_DIR) + "/docs/configuration.md"));
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, kKey)) keys.push_back(m[1]);
  }
  return keys;
}

// The entries of KEYS: a key alone on its line, then its indented body.
std::vector<std::pair<std::string, std::string>> manPageKeys(const std::string& roff) {
  static const std::regex kKey(R"(^[a-z_.]+$)");
  std::vector<std::pair<std::string, std::string>> entries;
  std::istringstream in(manSection(roff, "KEYS"));
  std::string previous;
  bool inBody = false;
  for (std::string line; std::getline(in, line); previous = line) {
    if (line == ".RS 4" && std::regex_match(previous, kKey)) {
      entries.push_back({previous, ""});
      inBody = true;
    } else if (line == ".RE") {
      inBody = false;
    } else if (inBody) {
      entries.back().second += line + "\n";
    }
  }
  return entries;
}

TEST(ConfigManPage, HasAnEntryForEachKeyOfTheHandbookWithItsFields) {
  std::string roff = readFile(manPagePath("tcpfork.yaml.5"));
  ASSERT_FALSE(roff.empty()) << "no generated man page " << manPagePath("tcpfork.yaml.5");
  std::vector<std::string> keys = handbookKeys();
  ASSERT_GT(keys.size(), 40u);
  std::vector<std::string> documented;
  for (const auto& [key, body] : manPageKeys(roff)) {
    documented.push_back(key);
    for (const char* field : {"type: ", "default: ", "changes on: ", "flag: "}) {
      EXPECT_NE(body.find(field), std::string::npos) << "tcpfork.yaml.5: " << key << " has no '" << field << "'";
    }
  }
  EXPECT_EQ(documented, keys) << "tcpfork.yaml.5's KEYS against docs/configuration.md's key blocks";
}

TEST(ConfigManPage, HasTheSectionsOfAManPage) {
  std::string roff = readFile(manPagePath("tcpfork.yaml.5"));
  EXPECT_EQ(manSectionTitles(roff), (std::vector<std::string>{"NAME", "SYNOPSIS", "DESCRIPTION", "VALUE FORMS",
                                                              "KEYS", "FILES", "EXAMPLES", "SEE ALSO"}));
  EXPECT_NE(manSection(roff, "NAME").find("tcpfork.yaml - "), std::string::npos) << manSection(roff, "NAME");
}

TEST(ConfigManPage, RendersWithoutWarnings) {
  ToolRun run = renderManPage(manPagePath("tcpfork.yaml.5"));
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(run.output, "") << "man --warnings on tcpfork.yaml.5";
}

INSTANTIATE_TEST_SUITE_P(Binaries, ManPage,
                         ::testing::Values(Page{"tcpfork", "tcpfork.8",
                                                {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "FILES",
                                                 "EXIT STATUS", "EXAMPLES", "SEE ALSO"}},
                                           Page{"tcpfork-worker", "tcpfork-worker.8",
                                                {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "FILES",
                                                 "EXIT STATUS", "EXAMPLES", "SEE ALSO"}},
                                           Page{"tcpfork-client", "tcpfork-client.1",
                                                {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                                                 "EXAMPLES", "SEE ALSO"}},
                                           Page{"tcpfork-stats", "tcpfork-stats.1",
                                                {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES",
                                                 "EXIT STATUS", "EXAMPLES", "SEE ALSO"}},
                                           Page{"tcpfork-journal", "tcpfork-journal.1",
                                                {"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS",
                                                 "FILE FORMAT", "EXIT STATUS", "EXAMPLES", "NOTES", "SEE ALSO"}}),
                         [](const auto& info) {
                           std::string name = info.param.binary;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace tcpfork::test
