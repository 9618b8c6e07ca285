#include "master/identity.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

namespace tcpfork {

Identity resolveIdentity(const Config& c) {
  Identity id;
  if (c.user.empty() && c.group.empty()) return id;
  if (::geteuid() != 0) {
    spdlog::warn("user/group set but not running as root; workers keep uid {}", ::geteuid());
    return id;
  }
  if (!c.user.empty()) {
    passwd* pw = ::getpwnam(c.user.c_str());
    if (!pw) throw ConfigError(fmt::format("user: no such user '{}'", c.user));
    id.uid = pw->pw_uid;
    id.gid = pw->pw_gid;
  }
  if (!c.group.empty()) {
    group* gr = ::getgrnam(c.group.c_str());
    if (!gr) throw ConfigError(fmt::format("group: no such group '{}'", c.group));
    id.gid = gr->gr_gid;
  }
  return id;
}

std::string selfPath() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::system_error(ec, "readlink(/proc/self/exe)");
  return self.string();
}

std::string workerBinaryBeside(const std::string& self) {
  auto worker = std::filesystem::path(self).parent_path() / "tcpfork-worker";
  if (::access(worker.c_str(), X_OK) != 0) {
    throw std::system_error(errno, std::generic_category(), "access(" + worker.string() + ")");
  }
  return worker.string();
}

}  // namespace tcpfork
