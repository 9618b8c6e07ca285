#include "worker/folded_stacks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "worker/profile_symbols.h"
#include "worker/symbolizer.h"

namespace tcpfork {
namespace {

// "tcpfork::Worker::run() const" -> "tcpfork::Worker::run": the parameters
// make a frame's name long and say little in a flame graph.
std::string shortName(std::string name) {
  if (name.ends_with(" const")) name.resize(name.size() - 6);
  if (!name.empty() && name.back() == ')') {
    int depth = 0;
    for (size_t i = name.size(); i-- > 0;) {
      if (name[i] == ')') ++depth;
      if (name[i] == '(' && --depth == 0) {
        if (i > 0) name.resize(i);
        break;
      }
    }
  }
  // ';' separates frames and a newline lines: neither may be in a name.
  std::replace(name.begin(), name.end(), ';', ':');
  std::replace(name.begin(), name.end(), '\n', ' ');
  return name;
}

bool isAllocator(const std::string& name) {
  static const std::regex kAllocator(
      R"(^(tc_.*|__libc_.*|malloc|calloc|realloc|free|posix_memalign|memalign|aligned_alloc|valloc|pvalloc|operator new.*|operator delete.*|.*tcmalloc::.*)$)");
  return std::regex_match(name, kAllocator);
}

}  // namespace

std::vector<WeightedStack> cpuProfileStacks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("open({}): {}", path, std::strerror(errno)));
  auto word = [&](uint64_t& w) { return bool(in.read(reinterpret_cast<char*>(&w), sizeof w)); };
  // Header: 0, its length in words (3), the format version (0), the
  // sampling period, 0.
  uint64_t header[5]{};
  for (auto& w : header) {
    if (!word(w)) throw std::runtime_error(fmt::format("{}: shorter than a CPU profile's header", path));
  }
  if (header[0] != 0 || header[1] != 3) throw std::runtime_error(fmt::format("{}: not a CPU profile", path));
  std::vector<WeightedStack> stacks;
  for (;;) {
    uint64_t count = 0, depth = 0;
    if (!word(count) || !word(depth)) break;
    // The trailer (0, 1, 0) ends the samples; the mappings follow as text.
    if (count == 0 && depth == 1) break;
    if (depth > 4096) throw std::runtime_error(fmt::format("{}: a sample of {} frames", path, depth));
    WeightedStack stack{std::vector<uint64_t>(depth), count};
    for (auto& pc : stack.frames) {
      if (!word(pc)) return stacks;
    }
    stacks.push_back(std::move(stack));
  }
  return stacks;
}

std::vector<WeightedStack> heapSampleStacks(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  double period = 0;
  if (std::getline(lines, line)) {
    if (auto at = line.find("heap_v2/"); at != std::string::npos) period = std::strtod(line.c_str() + at + 8, nullptr);
  }
  std::vector<WeightedStack> stacks;
  while (std::getline(lines, line)) {
    if (line.starts_with("MAPPED_LIBRARIES")) break;
    size_t at = line.find(" @ ");
    if (at == std::string::npos) continue;
    char* end = nullptr;
    double count = std::strtod(line.c_str(), &end);
    if (!end || *end != ':') continue;
    double bytes = std::strtod(end + 1, nullptr);
    if (count <= 0 || bytes <= 0) continue;
    // An allocation of average size s is sampled with probability
    // 1 - exp(-s / period).
    double scale = period > 1 ? 1 / (1 - std::exp(-(bytes / count) / period)) : 1;
    WeightedStack stack;
    stack.weight = uint64_t(bytes * scale);
    std::istringstream frames(line.substr(at + 3));
    for (std::string frame; frames >> frame;) stack.frames.push_back(std::strtoull(frame.c_str(), nullptr, 16));
    stacks.push_back(std::move(stack));
  }
  return stacks;
}

std::vector<uint64_t> addressesOf(const std::vector<WeightedStack>& stacks) {
  std::vector<uint64_t> out;
  for (const auto& s : stacks) out.insert(out.end(), s.frames.begin(), s.frames.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void writeFoldedStacks(const std::vector<WeightedStack>& stacks, bool dropAllocator, const std::string& path) {
  Symbolizer symbols;
  std::unordered_map<uint64_t, std::string> names;
  auto nameOf = [&](uint64_t at) -> const std::string& {
    auto [it, fresh] = names.try_emplace(at);
    if (fresh) {
      auto f = symbols.function(at);
      it->second = f ? shortName(demangle(f->symbol.c_str())) : fmt::format("{:#x}", at);
    }
    return it->second;
  };
  std::map<std::string, uint64_t> folded;
  for (const auto& s : stacks) {
    std::vector<const std::string*> frames;
    for (size_t i = 0; i < s.frames.size(); ++i) {
      // A caller's frame is a return address: the call is the byte before.
      const std::string& name = nameOf(i == 0 ? s.frames[i] : s.frames[i] - 1);
      if (dropAllocator && frames.empty() && isAllocator(name)) continue;
      frames.push_back(&name);
    }
    std::string line;
    for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
      if (!line.empty()) line += ';';
      line += **it;
    }
    if (!line.empty()) folded[line] += s.weight;
  }
  std::string text;
  for (const auto& [stack, weight] : folded) text += fmt::format("{} {}\n", stack, weight);
  writeTextFile(path, text);
}

}  // namespace tcpfork
