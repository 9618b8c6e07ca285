#pragma once
// ProfileDir: the directory CPU profiles land in (profile.dir, default
// /tmp/<name>_profile). The master creates it mode 0700 (owned by the worker
// user when workers drop privileges) and refuses one that is a symlink, not a
// directory, or owned by someone else, so nobody can plant a link where
// workers write. Also finds the profile a worker wrote, reads it for the
// pprof endpoint, and removes what a worker killed mid-profile left. Owned by
// the Master; on its loop.
//
// The workers' user owns the directory, so anything in it may be hostile
// (a symlink to /etc/shadow swapped in for a profile, a FIFO, a hard link, a
// sparse file of terabytes). The master holds the directory open from the
// start and works only relative to that descriptor, so renaming the
// directory and planting a link in its place changes nothing for it; it never
// follows a link inside it, never blocks opening an entry, never chmods or
// chowns an entry, and reads only what readProfile() accepts.

#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "base/unique_fd.h"

namespace tcpfork {

class ProfileDir {
 public:
  // More than a 300-second profile of deep stacks takes (tens of MB at most).
  static constexpr off_t kMaxProfileBytes = 64 << 20;

  // A file readProfile() would not serve; what() names it and says why.
  class Refused : public std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  // Throws std::runtime_error saying what is wrong with `path`.
  ProfileDir(std::string path, std::optional<uid_t> owner, std::optional<gid_t> group);

  const std::string& path() const { return path_; }
  // The name (in the directory) of the newest complete profile written by
  // `pid`, if any; only regular files count.
  std::optional<std::string> newestProfileOf(pid_t pid, std::string_view suffix = ".prof") const;
  // The bytes of profile `name`, if it is what a worker writes: a regular
  // file (opened with O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO fails
  // without being followed or blocking), owned by the workers' user (a hard
  // link to another user's file, where fs.protected_hardlinks allows one,
  // fails here), with one link (what the worker's rename leaves; a second
  // name means it is not that file), and at most kMaxProfileBytes. Else
  // throws Refused.
  std::string readProfile(const std::string& name) const;
  // Removes the unfinished profile (and symbol table) of a worker that died (unlinkat: a
  // symlink is removed, never what it points to); returns how many.
  int removePartialProfilesOf(pid_t pid) const;

 private:
  std::string path_;
  UniqueFd dir_;
  uid_t fileOwner_;  // who the workers run as: who writes the profiles
};

}  // namespace tcpfork
