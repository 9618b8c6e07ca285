#include "steering/reuseport_steering.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "steering/steer.skel.h"
#include "steering/steer_maps.h"

namespace tcpfork::steering {
namespace {

// libbpf's own messages (the verifier log among them) go to our log at
// debug level instead of stderr.
int libbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG || !spdlog::should_log(spdlog::level::debug)) return 0;
  char line[1024];
  int n = std::vsnprintf(line, sizeof line, format, args);
  std::string_view text(line, n > 0 ? std::min(size_t(n), sizeof line - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  spdlog::debug("libbpf: {}", text);
  return n;
}

std::optional<uint64_t> socketCookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) return std::nullopt;
  return cookie;
}

}  // namespace

void ReuseportSteering::SkeletonDeleter::operator()(steer* skeleton) const { steer__destroy(skeleton); }

ReuseportSteering::ReuseportSteering(unsigned maxWorkers) : maxWorkers_(std::min(maxWorkers, unsigned(STEER_MAX_WORKERS))) {}

ReuseportSteering::~ReuseportSteering() = default;

ReuseportSteering::Skeleton ReuseportSteering::load() {
  libbpf_set_print(libbpfPrint);
  Skeleton skeleton(steer__open());
  if (!skeleton) throw std::runtime_error(fmt::format("opening the program: {}", std::strerror(errno)));
  if (int err = bpf_map__set_max_entries(skeleton->maps.listeners, maxWorkers_); err != 0) {
    throw std::runtime_error(fmt::format("sizing its socket map: {}", std::strerror(-err)));
  }
  if (int err = steer__load(skeleton.get()); err != 0) {
    int e = -err;
    throw std::runtime_error(
        e == EPERM || e == EACCES
            ? fmt::format("loading the BPF program was refused ({}): it needs CAP_BPF and CAP_NET_ADMIN, or root",
                          std::strerror(e))
            : fmt::format("loading the BPF program failed ({}): the kernel needs reuseport programs that migrate "
                          "(Linux 5.14)",
                          std::strerror(e)));
  }
  return skeleton;
}

bool ReuseportSteering::available() {
  if (!available_) {
    try {
      load();
      available_ = true;
    } catch (const std::exception& e) {
      unavailable_ = e.what();
      available_ = false;
    }
  }
  return *available_;
}

bool ReuseportSteering::active() const {
  return std::any_of(groups_.begin(), groups_.end(), [](const auto& g) { return g.second.attached; });
}

void ReuseportSteering::sync(const std::vector<SteeredSocket>& sockets) {
  if (released_ || !available()) return;
  std::erase_if(groups_, [&](const auto& g) {
    return std::none_of(sockets.begin(), sockets.end(), [&](const SteeredSocket& s) { return s.group == g.first; });
  });
  for (const SteeredSocket& socket : sockets) {
    auto found = groups_.find(socket.group);
    if (found == groups_.end()) {
      if (failedGroups_.contains(socket.group)) continue;
      try {
        found = groups_.emplace(socket.group, Group{load(), {}, false, false, {}, {}, 0}).first;
      } catch (const std::exception& e) {
        spdlog::error("steering {}: {}; that address stays plain SO_REUSEPORT", socket.group, e.what());
        failedGroups_.insert(socket.group);
        continue;
      }
      if (!eligible_.empty()) write(found->second, eligible_);
    }
    insert(found->first, found->second, socket);
  }
  for (auto& [name, group] : groups_) {
    // Attached while the sockets are still in the upgraded master's map
    // too: replacing its program is what lets that map go.
    if (group.attached || (group.cookies.empty() && !group.busy)) continue;
    // Through any socket of the group: the program belongs to the group.
    for (const SteeredSocket& socket : sockets) {
      if (socket.group == name) {
        attach(name, group, socket.fd);
        break;
      }
    }
  }
}

void ReuseportSteering::insert(const std::string& name, Group& group, const SteeredSocket& socket) {
  auto cookie = socketCookie(socket.fd);
  if (!cookie) return;
  auto known = group.cookies.find(socket.index);
  if (known != group.cookies.end() && known->second == *cookie) return;
  if (socket.index >= maxWorkers_) return;
  uint32_t key = socket.index;
  uint64_t value = uint64_t(socket.fd);
  int mapFd = bpf_map__fd(group.skeleton->maps.listeners);
  if (bpf_map_update_elem(mapFd, &key, &value, BPF_ANY) != 0) {
    // EBUSY: the socket is still in another program's map, that of the
    // master we upgraded from; that map goes once our program has replaced
    // its program and that master has let go of it (release()).
    int error = errno;
    group.busy = error == EBUSY;
    if (error != EBUSY && group.warned.insert(socket.index).second) {
      spdlog::warn("steering {}: cannot add worker {}'s socket: {}; new connections do not go to it", name,
                   socket.index, std::strerror(error));
    }
    return;
  }
  group.cookies[socket.index] = *cookie;
  group.busy = false;
  group.warned.erase(socket.index);
}

void ReuseportSteering::attach(const std::string& name, Group& group, int fd) {
  int progFd = bpf_program__fd(group.skeleton->progs.steer);
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &progFd, sizeof progFd) != 0) {
    spdlog::error("steering {}: attaching the program failed: {}; that address stays plain SO_REUSEPORT", name,
                  std::strerror(errno));
    return;
  }
  group.attached = true;
}

void ReuseportSteering::release() {
  released_ = true;
  groups_.clear();
}

void ReuseportSteering::reattach() {
  // Our maps kept our sockets (theirs could not take them: EBUSY); only the
  // group's program changed. The next sync() attaches ours again (or, after
  // release(), loads and fills new ones).
  released_ = false;
  for (auto& [name, group] : groups_) group.attached = false;
}

void ReuseportSteering::write(Group& group, const std::vector<unsigned>& eligible) {
  steer_set set{};
  set.count = uint32_t(std::min(eligible.size(), size_t(STEER_MAX_WORKERS)));
  std::copy_n(eligible.begin(), set.count, set.index);
  uint32_t idle = group.live ^ 1;
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(group.skeleton->maps.sets), &idle, &set, BPF_ANY) != 0 ||
      bpf_map_update_elem(bpf_map__fd(group.skeleton->maps.live), &zero, &idle, BPF_ANY) != 0) {
    spdlog::error("steering: writing the eligible workers failed: {}", std::strerror(errno));
    return;
  }
  group.live = idle;
  group.published = eligible;
}

void ReuseportSteering::publish(const std::vector<unsigned>& eligible) {
  eligible_ = eligible;
  for (auto& [name, group] : groups_) {
    if (group.published != eligible) write(group, eligible);
  }
}

void ReuseportSteering::retire(const std::string& name, unsigned index) {
  std::erase(eligible_, index);
  auto found = groups_.find(name);
  if (found == groups_.end()) return;
  Group& group = found->second;
  if (std::find(group.published.begin(), group.published.end(), index) != group.published.end()) {
    write(group, eligible_);
  }
  uint32_t key = index;
  bpf_map_delete_elem(bpf_map__fd(group.skeleton->maps.listeners), &key);
  group.cookies.erase(index);
}

ProgramStats ReuseportSteering::stats() const {
  ProgramStats total;
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return total;
  std::vector<uint64_t> perCpu(size_t(cpus), 0);
  for (const auto& [name, group] : groups_) {
    int fd = bpf_map__fd(group.skeleton->maps.stats);
    for (uint32_t key : {uint32_t(STEER_STAT_STEERED), uint32_t(STEER_STAT_MIGRATED), uint32_t(STEER_STAT_UNSET),
                         uint32_t(STEER_STAT_MISSED)}) {
      if (bpf_map_lookup_elem(fd, &key, perCpu.data()) != 0) continue;
      uint64_t sum = 0;
      for (uint64_t n : perCpu) sum += n;
      if (key == STEER_STAT_STEERED) total.steered += sum;
      else if (key == STEER_STAT_MIGRATED) total.migrated += sum;
      else total.unsteered += sum;
    }
  }
  return total;
}

}  // namespace tcpfork::steering
