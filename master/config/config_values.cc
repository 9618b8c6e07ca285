// The machine facts config keys' defaults depend on: the CPUs this process
// may use. Declared in config.h. (The forms values take, bytes and
// durations, are the contract's: contract/setting_values.h.)
#include <sched.h>
#include <unistd.h>

#include <algorithm>

#include "master/config/config.h"

namespace tcpfork {

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
