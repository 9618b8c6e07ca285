#include "worker/profile_symbols.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <system_error>

#include "base/unique_fd.h"
#include "worker/symbolizer.h"

namespace tcpfork {

std::vector<uint64_t> cpuProfileAddresses(const std::string& path) {
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
  std::vector<uint64_t> addresses;
  for (;;) {
    uint64_t count = 0, depth = 0;
    if (!word(count) || !word(depth)) break;
    // The trailer (0, 1, 0) ends the samples; the mappings follow as text.
    if (count == 0 && depth == 1) break;
    if (depth > 4096) throw std::runtime_error(fmt::format("{}: a sample of {} frames", path, depth));
    for (uint64_t i = 0; i < depth; ++i) {
      uint64_t pc = 0;
      if (!word(pc)) return addresses;
      addresses.push_back(pc);
    }
  }
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  return addresses;
}

size_t writeSymbolTable(const std::vector<uint64_t>& addresses, const std::string& path) {
  Symbolizer symbols;
  std::map<uint64_t, Symbolizer::Function> functions;
  for (uint64_t at : addresses) {
    for (uint64_t a : {at, at - 1}) {
      auto found = functions.upper_bound(a);
      if (found != functions.begin() && a - std::prev(found)->first < std::prev(found)->second.size) continue;
      if (auto f = symbols.function(a)) functions.emplace(f->start, std::move(*f));
    }
  }
  std::string text = "tcpfork-symbols 1\n";
  for (const auto& [start, f] : functions) text += fmt::format("{:x} {:x} {}\n", start, f.size, f.symbol);
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw std::system_error(errno, std::generic_category(), "open(" + tmp + ")");
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      fd.reset();
      ::unlink(tmp.c_str());
      throw std::system_error(error, std::generic_category(), "write(" + tmp + ")");
    }
    done += size_t(n);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int error = errno;
    ::unlink(tmp.c_str());
    throw std::system_error(error, std::generic_category(), "rename(" + tmp + ", " + path + ")");
  }
  return functions.size();
}

}  // namespace tcpfork
