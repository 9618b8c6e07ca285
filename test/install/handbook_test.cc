// The handbook (README.md and docs/*.md) held to the build, so that it cannot
// drift: every link reaches a file and heading that exist, every config key
// of the reference is one the parser reads and the other way round, every
// metric of the reference is one a running master exports and the other way
// round, the worker's flag table has every flag of its --help, and every
// shell block marked runnable (```sh runnable) runs and exits 0 in the source
// tree, with the build's binaries first on PATH, leaving no process, no
// listener and no file behind.

#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "contract/worker_setting_table.h"
#include "master/config/config.h"
#include "base/socket.h"
#include "master/config/reload_plan.h"
#include "test/install/handbook_links.h"
#include "test/integration/loopback_port.h"
#include "test/integration/process.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = TCPFORK_SOURCE_DIR;

// A heading's anchor as GitHub makes it: lower case, punctuation dropped
// (word characters, hyphens and spaces kept), spaces as hyphens.
std::string anchorOf(const std::string& heading) {
  std::string anchor;
  for (unsigned char ch : heading) {
    if (std::isalnum(ch) || ch == '_' || ch == '-' || ch >= 0x80) {
      anchor += char(std::tolower(ch));
    } else if (ch == ' ') {
      anchor += '-';
    }
  }
  return anchor;
}

std::set<std::string> anchorsOf(const std::string& markdown) {
  std::set<std::string> anchors;
  static const std::regex kHeading(R"(^#{1,6} +(.*?) *$)");
  for (const ProseLine& line : proseLines(markdown)) {
    std::smatch m;
    if (std::regex_match(line.text, m, kHeading)) anchors.insert(anchorOf(m[1]));
  }
  return anchors;
}

TEST(Handbook, EveryLinkReachesAFileAndHeadingThatExist) {
  size_t links = 0;
  for (const std::string& page : handbookPages(kSource)) {
    for (const LocalLink& link : localLinks(kSource, page)) {
      ++links;
      if (!fs::exists(link.file)) {
        ADD_FAILURE() << link.where << ": no such file";
        continue;
      }
      if (link.anchor.empty() || link.file.extension() != ".md") continue;
      EXPECT_TRUE(anchorsOf(readFile(link.file.string())).contains(link.anchor)) << link.where << ": no such heading";
    }
  }
  EXPECT_GT(links, 50u) << "the pages link to each other";
}

// docs/configuration.md: one block per key, "### `key`" followed by its list.
struct KeyBlock {
  std::string key;
  std::string body;
};

std::vector<KeyBlock> configReference() {
  std::vector<KeyBlock> blocks;
  static const std::regex kKey(R"(^### `([a-z_.]+)`$)");
  for (const ProseLine& line : proseLines(readFile((kSource / "docs/configuration.md").string()))) {
    std::smatch m;
    if (std::regex_match(line.text, m, kKey)) {
      blocks.push_back({m[1], ""});
    } else if (line.text.starts_with("#")) {
      if (!blocks.empty() && !blocks.back().body.empty()) blocks.push_back({"", ""});
    } else if (!blocks.empty()) {
      blocks.back().body += line.text + "\n";
    }
  }
  std::erase_if(blocks, [](const KeyBlock& b) { return b.key.empty(); });
  return blocks;
}

// The parser's refusal of a config that sets an unknown key inside `dotted`
// ("" for the top level): for a mapping, "unknown key (known here: a, b)".
std::string refusalOfAnUnknownKeyIn(const std::string& dotted) {
  std::string yaml;
  std::string indent;
  std::istringstream parts(dotted);
  for (std::string part; std::getline(parts, part, '.');) {
    yaml += indent + part + ":\n";
    indent += "  ";
  }
  yaml += indent + "no_such_key: 1\n";
  std::string path = tempPath("probe.yaml");
  std::ofstream(path) << yaml;
  try {
    loadConfig(path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Every key the parser reads, dotted, as its refusals list them; a mapping
// counts as its keys.
std::set<std::string> parserKeys() {
  std::set<std::string> keys;
  std::vector<std::string> mappings = {""};
  static const std::regex kKnown(R"(known here: ([^)]*)\))");
  for (size_t i = 0; i < mappings.size(); ++i) {
    std::string refusal = refusalOfAnUnknownKeyIn(mappings[i]);
    std::smatch m;
    if (!std::regex_search(refusal, m, kKnown)) {
      ADD_FAILURE() << "no list of keys in the refusal inside '" << mappings[i] << "': " << refusal;
      continue;
    }
    std::istringstream list(m[1].str());
    for (std::string key; std::getline(list, key, ',');) {
      key.erase(0, key.find_first_not_of(' '));
      std::string dotted = mappings[i].empty() ? key : mappings[i] + "." + key;
      if (refusalOfAnUnknownKeyIn(dotted).find("known here:") != std::string::npos) {
        mappings.push_back(dotted);
      } else {
        keys.insert(dotted);
      }
    }
  }
  return keys;
}

TEST(Handbook, TheConfigReferenceHasABlockForEveryKeyTheParserReads) {
  std::set<std::string> documented;
  for (const KeyBlock& block : configReference()) {
    EXPECT_TRUE(documented.insert(block.key).second) << block.key << " has two blocks";
  }
  std::set<std::string> read = parserKeys();
  ASSERT_GT(read.size(), 40u);
  for (const std::string& key : read) EXPECT_TRUE(documented.contains(key)) << key << " has no block";
  for (const std::string& key : documented) EXPECT_TRUE(read.contains(key)) << key << " is not a key the parser reads";
}

TEST(Handbook, EachKeyBlockGivesTypeDefaultChangeAndFlag) {
  std::set<std::string> restartOnly;
  for (const std::string& key : restartOnlyKeys()) restartOnly.insert(key);
  std::map<std::string, std::string> flags;
  for (const WorkerSetting& s : workerSettingTable()) flags[std::string(s.key)] = std::string(s.flag);
  for (const KeyBlock& block : configReference()) {
    for (const char* field : {"- type: ", "- default: ", "- changes on: ", "- flag: "}) {
      EXPECT_NE(block.body.find(field), std::string::npos) << block.key << " has no '" << field << "'";
    }
    bool saysRestart = block.body.find("- changes on: restart only") != std::string::npos;
    EXPECT_EQ(saysRestart, restartOnly.contains(block.key)) << block.key << ": reload or restart";
    if (auto flag = flags.find(block.key); flag != flags.end()) {
      EXPECT_NE(block.body.find("`tcpfork-worker " + flag->second + "`"), std::string::npos)
          << block.key << " does not name its worker flag " << flag->second;
    }
  }
}

// docs/monitoring.md's metrics reference: the first cell of each row of
// the table under "## Metrics reference", without its labels; names with a
// placeholder (a module's counters) are left out.
std::map<std::string, std::string> documentedMetrics() {
  std::map<std::string, std::string> metrics;
  std::string page = readFile((kSource / "docs/monitoring.md").string());
  size_t from = page.find("\n## Metrics reference\n");
  EXPECT_NE(from, std::string::npos);
  if (from == std::string::npos) return metrics;
  static const std::regex kRow(R"(^\| `([a-z_<>]+)(\{[^`]*\})?` \| ([a-z]+) \|)");
  bool inTable = false;
  std::istringstream in(page.substr(from));
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, kRow)) {
      inTable = true;
      if (m[1].str().find('<') == std::string::npos) {
        EXPECT_TRUE(metrics.emplace(m[1], m[3]).second) << m[1] << " has two rows";
      }
    } else if (inTable && !line.starts_with("|")) {
      break;
    }
  }
  return metrics;
}

TEST(Handbook, TheMetricsReferenceNamesWhatARunningMasterExports) {
  // The agent check on, so that its counter is exported too.
  RunningMaster master(1, "agent:\n  listen: 127.0.0.1:0\n");
  std::map<std::string, std::string> exported;
  std::istringstream in(master.scrape());
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, std::regex(R"(# TYPE (\S+) (\S+))"))) exported[m[1]] = m[2];
  }
  ASSERT_GT(exported.size(), 40u);
  std::map<std::string, std::string> documented = documentedMetrics();
  for (const auto& [name, type] : exported) {
    auto row = documented.find(name);
    if (row == documented.end()) {
      ADD_FAILURE() << name << " (" << type << ") is exported and not in docs/monitoring.md's reference";
    } else {
      EXPECT_EQ(row->second, type) << name;
    }
  }
  for (const auto& [name, type] : documented) {
    EXPECT_TRUE(exported.contains(name)) << name << " is in the reference and not exported";
  }
}

TEST(Handbook, TheWorkerFlagTableHasEveryFlagOfHelp) {
  ToolRun help = runTool("tcpfork-worker", {"--help"});
  ASSERT_EQ(help.exitCode, 0) << help.output;
  std::string page = readFile((kSource / "docs/running.md").string());
  size_t from = page.find("\n## The worker: `tcpfork-worker`\n");
  ASSERT_NE(from, std::string::npos);
  std::string section = page.substr(from, page.find("\n## ", from + 1) - from);
  static const std::regex kFlag(R"(^  (--[a-z-]+))");
  size_t flags = 0;
  std::istringstream in(help.output);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, kFlag) || m[1] == "--help" || m[1] == "--version") continue;
    ++flags;
    EXPECT_NE(section.find("| `" + m[1].str()), std::string::npos) << m[1] << " has no row in docs/running.md";
  }
  EXPECT_GT(flags, 25u);
}

struct RunnableBlock {
  std::string where;
  std::string script;
};

std::vector<RunnableBlock> runnableBlocks() {
  std::vector<RunnableBlock> blocks;
  for (const std::string& page : handbookPages(kSource)) {
    std::istringstream in(readFile((kSource / page).string()));
    size_t number = 0;
    std::optional<RunnableBlock> open;
    bool fenced = false;
    for (std::string line; std::getline(in, line);) {
      ++number;
      if (!line.starts_with("```")) {
        if (open) open->script += line + "\n";
        continue;
      }
      if (open) {
        blocks.push_back(*open);
        open.reset();
      } else if (!fenced && line == "```sh runnable") {
        open = RunnableBlock{page + ":" + std::to_string(number), ""};
      }
      fenced = !fenced;
    }
    EXPECT_FALSE(open) << page << ": a runnable block is not closed";
  }
  return blocks;
}

// The processes whose environment holds `entry` ("NAME=value"). Every
// process a block starts inherits its environment, a daemon too; a zombie
// has none left to read (and holds no port or file).
std::vector<pid_t> processesWithEnvironment(const std::string& entry) {
  const std::string needle = '\0' + entry + '\0';
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& proc : fs::directory_iterator("/proc", ec)) {
    std::string name = proc.path().filename().string();
    if (!std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); })) continue;
    if (('\0' + readFile((proc.path() / "environ").string())).find(needle) != std::string::npos) {
      pids.push_back(std::stoi(name));
    }
  }
  return pids;
}

// SIGTERM first, which a master answers by stopping its workers and
// removing its pidfile and /dev/shm/<name>.stats; SIGKILL to what is left
// after 10 s.
void stop(const std::vector<pid_t>& pids) {
  auto gone = [](pid_t pid) {
    std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    size_t close = stat.rfind(')');
    return close == std::string::npos || stat.compare(close + 1, 3, " Z ") == 0;
  };
  for (pid_t pid : pids) ::kill(pid, SIGTERM);
  waitUntil([&] { return std::all_of(pids.begin(), pids.end(), gone); }, 10s);
  for (pid_t pid : pids) {
    if (!gone(pid)) ::kill(pid, SIGKILL);
  }
}

bool someoneListensOn(int port) {
  try {
    connectTcp(parseAddress(addr(port)));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Each block runs with, in its environment, loopback ports of its own in
// TCPFORK_PORT and TCPFORK_ADMIN_PORT (reserved for it: bound, never
// listening, so that no other process is given them while it runs; tcpfork
// sets SO_REUSEADDR and listens on them), an empty TMPDIR of its own, and a
// marker its processes inherit. The bound is the block's own waits (20 s
// each, a daemon's start and stop) with room to spare.
TEST(Handbook, EveryRunnableShellBlockRunsAgainstTheBuildAndLeavesNothing) {
  std::vector<RunnableBlock> blocks = runnableBlocks();
  EXPECT_GE(blocks.size(), 3u) << "README and docs mark their runnable blocks ```sh runnable";
  for (const RunnableBlock& block : blocks) {
    BoundPort port = reservedLoopbackPort();
    BoundPort adminPort = reservedLoopbackPort();
    TempDir tmp("block-tmp");
    fs::create_directories(tmp.path);
    std::string marker = "TCPFORK_DOCS_BLOCK=" + uniqueName();
    std::string script = "set -e\ncd '" + kSource.string() + "'\nPATH='" + std::string(TCPFORK_BIN_DIR) + "':$PATH\n" +
                         block.script;
    ToolRun run = runCommand({"/usr/bin/env", "TCPFORK_PORT=" + std::to_string(port.port),
                              "TCPFORK_ADMIN_PORT=" + std::to_string(adminPort.port), "TMPDIR=" + tmp.path, marker,
                              "/bin/sh", "-c", script},
                             60s);
    EXPECT_EQ(run.exitCode, 0) << block.where << ":\n" << block.script << "printed:\n" << run.output;

    // Nothing left behind, whether it passed or not; what is, is stopped.
    std::vector<pid_t> left = processesWithEnvironment(marker);
    for (pid_t pid : left) {
      std::string command = readFile("/proc/" + std::to_string(pid) + "/cmdline");
      std::replace(command.begin(), command.end(), '\0', ' ');
      ADD_FAILURE() << block.where << ": left running: pid " << pid << ": " << command << "\nprinted:\n"
                    << run.output;
    }
    for (int p : {port.port, adminPort.port}) {
      EXPECT_FALSE(someoneListensOn(p)) << block.where << ": something still listens on its port " << p;
    }
    stop(left);
    std::string leftFiles;
    std::error_code ec;
    for (const auto& entry : fs::recursive_directory_iterator(tmp.path, ec)) leftFiles += entry.path().string() + "\n";
    EXPECT_EQ(leftFiles, "") << block.where << ": left in its TMPDIR";
  }
}

// docs/measurements.md, the one place measured figures live: every row of
// its tables says what, the figure, when (a date), the command or test that
// produced it (in backticks) and the machine.
TEST(Handbook, EveryMeasurementRowGivesItsDateAndItsCommand) {
  static const std::string kHeader = "| what | figure | measured | command or test | machine |";
  static const std::regex kDate(R"(\b20[0-9]{2}-[01][0-9]-[0-3][0-9]\b)");
  size_t rows = 0;
  bool inTable = false;
  for (const ProseLine& line : proseLines(readFile((kSource / "docs/measurements.md").string()))) {
    std::string where = "docs/measurements.md:" + std::to_string(line.number);
    if (!line.text.starts_with("|")) {
      inTable = false;
      continue;
    }
    if (!inTable) {
      EXPECT_EQ(line.text, kHeader) << where << ": a table of other columns";
      inTable = true;
      continue;
    }
    if (line.text.starts_with("| ---")) continue;
    // The cells, split at the bars outside code spans.
    std::vector<std::string> cells(1);
    bool code = false;
    for (char ch : line.text.substr(1)) {
      if (ch == '`') code = !code;
      if (ch == '|' && !code) {
        cells.emplace_back();
      } else {
        cells.back() += ch;
      }
    }
    cells.pop_back();  // after the closing bar
    ++rows;
    ASSERT_EQ(cells.size(), 5u) << where << ": " << line.text;
    for (const std::string& cell : cells) {
      EXPECT_NE(cell.find_first_not_of(' '), std::string::npos) << where << ": an empty cell";
    }
    EXPECT_TRUE(std::regex_search(cells[2], kDate)) << where << ": no date in '" << cells[2] << "'";
    EXPECT_NE(cells[3].find('`'), std::string::npos) << where << ": no command or test in '" << cells[3] << "'";
  }
  EXPECT_GT(rows, 30u) << "docs/measurements.md holds the handbook's measured figures";
}

}  // namespace
}  // namespace tcpfork::test
