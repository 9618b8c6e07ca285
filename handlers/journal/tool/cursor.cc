#include "handlers/journal/tool/cursor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"

namespace tcpfork::journal {

namespace {

constexpr int kCursorVersion = 1;

[[noreturn]] void failed(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

std::string directoryOf(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

bool loadCursor(const std::string& path, Positions& positions) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return false;
    throw std::runtime_error(path + ": cannot read the cursor: " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  try {
    auto j = nlohmann::json::parse(text.str());
    if (j.at("version").get<int>() != kCursorVersion) throw std::runtime_error("unknown version");
    positions.clear();
    for (const auto& [writer, at] : j.at("writers").items()) {
      positions[writer] = {at.at("sequence").get<uint32_t>(), at.at("offset").get<uint64_t>()};
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not a tcpfork-journal cursor: " + e.what());
  }
  return true;
}

void saveCursor(const std::string& path, const Positions& positions) {
  nlohmann::ordered_json j;
  j["version"] = kCursorVersion;
  j["writers"] = nlohmann::ordered_json::object();
  for (const auto& [writer, at] : positions) j["writers"][writer] = {{"sequence", at.sequence}, {"offset", at.offset}};
  std::string text = j.dump() + "\n";
  std::string temporary = path + ".tmp";
  {
    UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) failed(temporary + ": open");
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) failed(temporary + ": write");
      done += size_t(n);
    }
    if (::fsync(fd.get()) != 0) failed(temporary + ": fsync");
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) failed(path + ": rename");
  std::string dir = directoryOf(path);
  UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirFd || ::fsync(dirFd.get()) != 0) failed(dir + ": fsync of the directory");
}

}  // namespace tcpfork::journal
