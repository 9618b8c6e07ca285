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
  writeTextFile(path, text);
  return functions.size();
}

void writeTextFile(const std::string& path, const std::string& text) {
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
}

}  // namespace tcpfork
