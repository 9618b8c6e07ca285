#pragma once
// ProfileDir: the directory CPU profiles land in (profile.dir, default
// /tmp/<name>_profile). The master creates it mode 0700 (owned by the worker
// user when workers drop privileges) and refuses one that is a symlink, not a
// directory, or owned by someone else, so nobody can plant a link where
// workers write. Also finds the profile a worker wrote and removes what a
// worker killed mid-profile left.

#include <sys/types.h>

#include <optional>
#include <string>

namespace tcpfork {

class ProfileDir {
 public:
  // Throws std::runtime_error saying what is wrong with `path`.
  ProfileDir(std::string path, std::optional<uid_t> owner, std::optional<gid_t> group);

  const std::string& path() const { return path_; }
  // The newest complete profile written by `pid`, if any.
  std::optional<std::string> newestProfileOf(pid_t pid) const;
  // Removes the unfinished profile of a worker that died; returns how many.
  int removePartialProfilesOf(pid_t pid) const;

 private:
  std::string path_;
};

}  // namespace tcpfork
