// The values config keys take, and the machine facts their defaults depend
// on: byte sizes, durations, the CPUs this process may use. Declared in
// config.h.
#include <sched.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <stdexcept>

#include "master/config.h"

namespace tcpfork {

uint64_t parseBytes(const std::string& text) {
  static const std::regex kForm(R"(\s*([0-9]{1,19})\s*(K|M|G|KiB|MiB|GiB)?\s*)");
  std::smatch m;
  if (!std::regex_match(text, m, kForm)) {
    throw std::invalid_argument(fmt::format("expected bytes like 1048576, 512KiB, 64MiB or 2GiB, got '{}'", text));
  }
  uint64_t value = std::stoull(m[1].str());
  unsigned shift = 0;
  if (m[2].matched) shift = m[2].str()[0] == 'K' ? 10 : m[2].str()[0] == 'M' ? 20 : 30;
  if (value > (~uint64_t{0} >> shift)) throw std::invalid_argument(fmt::format("'{}' is too large", text));
  return value << shift;
}

Millis parseDuration(const std::string& text) {
  static const std::regex kForm(R"(\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*)");
  std::smatch m;
  if (!std::regex_match(text, m, kForm)) {
    throw std::invalid_argument(fmt::format("expected a duration like 250ms, 30s, 5m or 1h, got '{}'", text));
  }
  double value = std::stod(m[1].str());
  std::string unit = m[2].matched ? m[2].str() : "s";
  double ms = unit == "ms" ? value : unit == "s" ? value * 1e3 : unit == "m" ? value * 60e3 : value * 3600e3;
  // Past this llround is undefined; every key's own ceiling is far below it.
  constexpr double kLargest = 1e15;  // about 31,000 years
  if (!(ms <= kLargest)) throw std::invalid_argument(fmt::format("'{}' is too long a duration", text));
  return Millis(std::llround(ms));
}

std::string formatDuration(Millis d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

unsigned usableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? unsigned(n) : 1;
}

std::vector<unsigned> usableCpus() {
  cpu_set_t set;
  std::vector<unsigned> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

std::vector<int> workerCpus(const CpuAffinity& affinity) {
  std::vector<int> out;
  if (affinity.mode == CpuAffinity::Mode::kNone) return out;
  const std::vector<unsigned> cpus = affinity.mode == CpuAffinity::Mode::kAuto ? usableCpus() : affinity.cpus;
  for (unsigned cpu : cpus) out.push_back(int(cpu));
  return out;
}

}  // namespace tcpfork
