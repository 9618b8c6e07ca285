// tcpfork-journal: reads and checks the segment files the journal module
// writes. `cat` prints their good records as lines of text or JSON; `verify`
// checks every header and record CRC and says where and why a file stops
// being good; `follow` prints records as the workers write them, until
// stopped, and keeps its place in a cursor file. Exit 0 when all is well
// (follow: stopped by SIGINT or SIGTERM), 1 when damage was found, 2 when a
// file could not be read, is no segment, or the command line was wrong.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <signal.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "base/version.h"
#include "handlers/journal/segment_files.h"
#include "handlers/journal/tool/cursor.h"
#include "handlers/journal/tool/follow.h"
#include "handlers/journal/tool/print.h"
#include "handlers/journal/tool/scan.h"

using namespace tcpfork::journal;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitProblem = 1;  // a torn tail, a corrupt record or a bad header
constexpr int kExitError = 2;    // the command line, or a file unreadable or no segment

// What the files given came to.
struct Tally {
  uint64_t files = 0;  // read
  uint64_t records = 0;
  uint64_t problems = 0;
  uint64_t beingWritten = 0;
  uint64_t errors = 0;

  int exitCode() const { return errors > 0 ? kExitError : problems > 0 ? kExitProblem : kExitOk; }
};

// To stderr, after what stdout holds so far, so that a warning follows the
// records it is about when both go to one file.
void warn(const std::string& message) {
  std::fflush(stdout);
  fmt::print(stderr, "tcpfork-journal: {}\n", message);
}

// Scans every segment of `paths` (a file, or a directory's segments in name
// order) with `sink`, counts it in `tally`, then gives it to `report`. What
// cannot be read is reported here and counted as an error.
void scanAll(const std::vector<std::string>& paths, const RecordSink& sink,
             const std::function<void(const SegmentScan&)>& report, Tally& tally) {
  for (const auto& path : paths) {
    std::vector<std::string> files;
    try {
      files = segmentsIn(path);
    } catch (const std::system_error& e) {
      warn(e.what());
      ++tally.errors;
      continue;
    }
    if (files.empty()) warn(fmt::format("{}: no journal segments (*{} or *{}) in this directory", path,
                                        kSealedSuffix, kOpenSuffix));
    for (const auto& file : files) {
      SegmentScan scan;
      try {
        scan = scanSegment(file, sink);
      } catch (const std::system_error& e) {
        warn(e.what());
        ++tally.errors;
        continue;
      }
      ++tally.files;
      tally.records += scan.records;
      switch (scan.verdict()) {
        case SegmentScan::Verdict::kOk:
          break;
        case SegmentScan::Verdict::kBeingWritten:
          ++tally.beingWritten;
          break;
        case SegmentScan::Verdict::kProblem:
          ++tally.problems;
          break;
        case SegmentScan::Verdict::kNotASegment:
          ++tally.errors;
          break;
      }
      report(scan);
    }
  }
}

// Standard output is a pipe or a file more often than not: a failed write
// must not pass for a clean run.
int finish(int code) {
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    fmt::print(stderr, "tcpfork-journal: writing standard output: {}\n", std::strerror(errno));
    return kExitError;
  }
  return code;
}

int runCat(const std::vector<std::string>& paths, bool json) {
  Tally tally;
  auto print = [json](const SegmentScan& scan, const Record& record) {
    std::string line = json ? recordJson(scan, record) : recordText(scan, record);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  };
  auto report = [](const SegmentScan& scan) {
    if (scan.verdict() == SegmentScan::Verdict::kOk) return;
    if (scan.verdict() == SegmentScan::Verdict::kNotASegment) {
      warn(fmt::format("{}: {}", scan.path, describe(scan.headerStatus)));
      return;
    }
    warn(fmt::format("{}: {}", scan.path, describeStop(scan)));
  };
  scanAll(paths, print, report, tally);
  return finish(tally.exitCode());
}

int runVerify(const std::vector<std::string>& paths) {
  Tally tally;
  auto report = [](const SegmentScan& scan) { fmt::print("{}\n", verifyLine(scan)); };
  scanAll(paths, [](const SegmentScan&, const Record&) {}, report, tally);
  std::string summary = fmt::format("{}, {}, {}", count(tally.files, "file"), count(tally.records, "record"),
                                    count(tally.problems, "problem"));
  if (tally.beingWritten > 0) summary += fmt::format(", {} still being written", tally.beingWritten);
  if (tally.errors > 0) summary += fmt::format(", {}", count(tally.errors, "error"));
  fmt::print("{}\n", summary);
  return finish(tally.exitCode());
}

// How often follow looks for what is new.
constexpr auto kFollowPoll = std::chrono::milliseconds(100);

volatile sig_atomic_t stopFollowing = 0;

// "2026-12-02T05:30:00Z" (a fraction of a second allowed) or Unix seconds.
bool parseSince(const std::string& text, uint64_t& ns) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    ns = std::stoull(text) * 1'000'000'000;
    return true;
  }
  struct tm utc{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &utc);
  if (!rest) return false;
  uint64_t fraction = 0;
  if (*rest == '.') {
    uint64_t scale = 100'000'000;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest, scale /= 10) fraction += uint64_t(*rest - '0') * scale;
  }
  if (std::string(rest) != "Z") return false;
  time_t seconds = ::timegm(&utc);
  if (seconds < 0) return false;
  ns = uint64_t(seconds) * 1'000'000'000 + fraction;
  return true;
}

struct FollowArgs {
  std::string dir;
  bool json = false;
  bool fromStart = false;
  std::string since;
  std::string cursor;
};

int runFollow(const FollowArgs& args) {
  FollowOptions options;
  options.dir = args.dir;
  if (args.fromStart) options.start = FollowOptions::Start::kFromStart;
  if (!args.since.empty()) {
    if (!parseSince(args.since, options.sinceNs)) {
      warn("--since: expected a UTC time like 2026-12-02T05:30:00Z, or Unix seconds, got '" + args.since + "'");
      return kExitError;
    }
    options.start = FollowOptions::Start::kFromStart;
  }
  Positions positions;
  bool resumed = false;
  try {
    if (!args.cursor.empty()) resumed = loadCursor(args.cursor, positions);
  } catch (const std::exception& e) {
    warn(e.what());
    return kExitError;
  }
  auto print = [&args](const SegmentScan& scan, const Record& record) {
    std::string line = args.json ? recordJson(scan, record) : recordText(scan, record);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  };
  Follower follower(options, positions, resumed, print, warn);

  struct sigaction onStop {};
  onStop.sa_handler = [](int) { stopFollowing = 1; };
  ::sigaction(SIGINT, &onStop, nullptr);
  ::sigaction(SIGTERM, &onStop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a reader gone shows as a failed write, and the cursor stays where it was

  Positions saved = positions;
  for (bool first = true; !stopFollowing; first = false) {
    try {
      follower.poll();
    } catch (const std::system_error& e) {
      warn(e.what());
      return finish(kExitError);
    }
    // The cursor moves only past what has reached standard output.
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) return finish(kExitError);
    if (!args.cursor.empty() && (first || follower.positions() != saved)) {
      try {
        saveCursor(args.cursor, follower.positions());
      } catch (const std::system_error& e) {
        warn(e.what());
        return kExitError;
      }
      saved = follower.positions();
    }
    if (stopFollowing) break;
    timespec pause{0, long(std::chrono::nanoseconds(kFollowPoll).count())};
    ::nanosleep(&pause, nullptr);  // a stop signal cuts it short
  }
  return finish(kExitOk);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcpfork-journal: read and check the journal's segment files"};
  app.set_version_flag("--version", tcpfork::versionLine("tcpfork-journal"));
  app.require_subcommand(1);

  std::vector<std::string> catPaths;
  bool json = false;
  auto* cat = app.add_subcommand("cat", "print every good record, in file order");
  cat->add_flag("--json", json, "one JSON object per record instead of a line of text");
  cat->add_option("PATH", catPaths, "segment file or journal directory")->required();

  std::vector<std::string> verifyPaths;
  auto* verify = app.add_subcommand("verify", "check every header and record CRC; one line per file");
  verify->add_option("PATH", verifyPaths, "segment file or journal directory")->required();

  FollowArgs followArgs;
  auto* follow = app.add_subcommand("follow", "print records as the workers write them, until stopped");
  follow->add_flag("--json", followArgs.json, "one JSON object per record instead of a line of text");
  auto* fromStart = follow->add_flag("--from-start", followArgs.fromStart,
                                     "begin with the oldest record in the directory (default: with what is new)");
  follow->add_option("--since", followArgs.since, "begin with records received at or after TIME (UTC, RFC 3339)")
      ->excludes(fromStart);
  follow->add_option("--cursor", followArgs.cursor,
                     "keep the place reached in FILE, and go on from it when FILE exists");
  follow->add_option("DIR", followArgs.dir, "journal directory")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here too, with 0.
    return app.exit(e) == 0 ? kExitOk : kExitError;
  }
  if (cat->parsed()) return runCat(catPaths, json);
  if (follow->parsed()) return runFollow(followArgs);
  return runVerify(verifyPaths);
}
