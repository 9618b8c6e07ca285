// tcpfork-journal: reads and checks the segment files the journal module
// writes. `cat` prints their good records as lines of text or JSON; `verify`
// checks every header and record CRC and says where and why a file stops
// being good. Exit 0 when all is well, 1 when damage was found, 2 when a
// file could not be read, is no segment, or the command line was wrong.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "base/version.h"
#include "handlers/journal/segment_files.h"
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here too, with 0.
    return app.exit(e) == 0 ? kExitOk : kExitError;
  }
  if (cat->parsed()) return runCat(catPaths, json);
  return runVerify(verifyPaths);
}
