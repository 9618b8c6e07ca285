#include "test/integration/journal_fixture.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "protocol/codec.h"
#include "test/integration/process.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {

namespace fs = std::filesystem;

std::string journalModule() { return std::string(TCPFORK_JOURNAL_MODULE); }

// Shedding off (overload.shed: auto would shed with a module): these tests
// count every answer that is neither 0 nor 1 as wrong, and a loaded or
// sanitized machine can make a burst wait past overload.target. The journal
// under shedding is overload_test.cc's.
std::string journalYaml(const std::string& dir, const std::string& more) {
  return "handler:\n  module: " + journalModule() + "\n  config: {dir: " + dir + (more.empty() ? "" : ", " + more) +
         "}\noverload:\n  shed: off\n";
}

std::string idText(uint64_t n) {
  auto id = protocol::formatId(n);
  return std::string(protocol::asText(id));
}

JournalContents readJournal(const std::string& dir) {
  JournalContents contents;
  ToolRun run = runTool("tcpfork-journal", {"cat", "--json", dir}, 60s);
  contents.exitCode = run.exitCode;
  contents.output = run.output;
  std::istringstream lines(run.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto record = nlohmann::json::parse(line);
    contents.ids.insert(record["id"].get<std::string>());
    contents.records.push_back(std::move(record));
  }
  return contents;
}

std::vector<std::string> filesIn(const std::string& dir, std::string_view suffix) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

size_t expectAllInJournal(const std::vector<uint64_t>& acked, const JournalContents& journal) {
  size_t missing = 0;
  for (uint64_t n : acked) {
    if (journal.ids.count(idText(n)) == 0 && ++missing <= 10) {
      ADD_FAILURE() << "acked ID " << idText(n) << " is not in the journal";
    }
  }
  return missing;
}

double cpuSeconds(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  double ticks = 0;
  // Fields 14 and 15 (utime, stime), counting from the pid as 1.
  for (int n = 3; fields >> field && n <= 15; ++n) {
    if (n == 14 || n == 15) ticks += std::stod(field);
  }
  return ticks / double(::sysconf(_SC_CLK_TCK));
}

JournalLoad::JournalLoad(int port, int connections, uint64_t burst, size_t payloadBytes, uint64_t firstId)
    : port_(port), burst_(burst), payloadBytes_(payloadBytes), next_(firstId) {
  for (int c = 0; c < connections; ++c) threads_.emplace_back([this] { run(); });
}

void JournalLoad::stop() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

PreloadedFaults::PreloadedFaults(const std::string& dir, const std::string& control) : control_(control) {
  set("LD_PRELOAD", std::string(TCPFORK_TEST_MODULE_DIR) + "/journal_faults.so");
  set("TCPFORK_TEST_FAULT_DIR", dir);
  set("TCPFORK_TEST_FAULT_FILE", control);
  // Under AddressSanitizer: a preloaded library comes before its runtime.
  const char* asan = ::getenv("ASAN_OPTIONS");
  set("ASAN_OPTIONS", std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "verify_asan_link_order=0");
  arm("");
}

void PreloadedFaults::restore() {
  for (const auto& [name, value] : saved_) {
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  saved_.clear();
}

void PreloadedFaults::arm(const std::string& calls) { std::ofstream(control_, std::ios::trunc) << calls << "\n"; }

void PreloadedFaults::set(const std::string& name, const std::string& value) {
  const char* old = ::getenv(name.c_str());
  saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
  ::setenv(name.c_str(), value.c_str(), 1);
}

std::string JournalLoad::payload(uint64_t n) const {
  std::string text = "p" + idText(n);
  if (text.size() < payloadBytes_) text.resize(payloadBytes_, 'x');
  return text;
}

void JournalLoad::run() {
  for (int attempt = 0; !stop_ && attempt < 200; ++attempt) {
    std::unique_ptr<TestConnection> conn;
    try {
      conn = std::make_unique<TestConnection>(port_, 10s);
    } catch (const std::exception&) {
      std::this_thread::sleep_for(10ms);  // between connect attempts to a restarting server: bounded by attempt
      continue;
    }
    uint64_t ackedHere = 0;
    bool lost = false;
    while (!stop_ && !lost) {
      uint64_t first = next_.fetch_add(burst_);
      std::vector<std::byte> frames;
      for (uint64_t n = first; n < first + burst_; ++n) frames = concat(std::move(frames), submitFrame(n, payload(n)));
      try {
        conn->send(frames);
      } catch (const std::exception&) {
        lost = true;
        break;
      }
      std::vector<std::byte> acks = conn->read(burst_ * kAckBytes);
      std::vector<uint64_t> good;
      uint64_t notStored = 0;
      const bool marked = first >= mark_.load();
      for (size_t i = 0; i + kAckBytes <= acks.size(); i += kAckBytes) {
        uint64_t n = first + i / kAckBytes;
        std::vector<std::byte> one(acks.begin() + long(i), acks.begin() + long(i + kAckBytes));
        std::vector<std::byte> ok = submitAckFrame(n);
        if (one == ok) {
          good.push_back(n);
          continue;
        }
        ok.back() = std::byte{1};
        if (one == ok) {
          ++notStored;
        } else {
          ++wrong_;
        }
      }
      {
        std::lock_guard lock(mutex_);
        ids_.insert(ids_.end(), good.begin(), good.end());
      }
      notStored_ += notStored;
      acked_ += good.size();
      if (marked) {
        notStoredSinceMark_ += notStored;
        ackedSinceMark_ += good.size();
      }
      if (notStored > 0) std::this_thread::sleep_for(1ms);  // a client's backoff, bounded by the run
      ackedHere += good.size();
      if (acks.size() < burst_ * kAckBytes) lost = true;
    }
    if (lost) {
      ++lost_;
      ackedOnLost_ += ackedHere;
    }
  }
}

}  // namespace tcpfork::test
