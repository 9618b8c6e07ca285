"""The soak's view of one real `tcpfork` master: started in its own temp
directory with its own name, pidfile, ports and config; probed through its
admin HTTP port and /proc; and, at the end, checked for anything it left
behind (processes, the shared-memory segment, the pidfile, partial profiles).
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from proc_status import status_bytes
from build_tree import free_port


def proc_start_time(pid):
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), or None when gone.

    A pid plus its start time names one process even if the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # exited, not yet reaped: dead for our purposes
        return None
    return int(fields[19])


def proc_parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def fd_targets(pid):
    """What each descriptor points at, for showing what changed between two moments."""
    out = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
    except OSError:
        pass
    return out


def rss_bytes(pid):
    return status_bytes(pid, "VmRSS")


def processes_of(name):
    """Live tcpfork-worker processes of the instance `name` (the master's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) != b"tcpfork-worker":
            continue
        for i in range(len(argv) - 1):
            if argv[i] == b"--name" and argv[i + 1] == name.encode():
                if proc_start_time(int(entry)) is not None:
                    found.append(int(entry))
                break
    return found


class SoakMaster:
    def __init__(self, bin_dir, work_dir, workers, max_workers, worker_timeout_s, drain_timeout_s,
                 profile_duration_s, extra_yaml=""):
        self.work_dir = work_dir
        self.name = os.path.basename(work_dir)  # mkdtemp made it unique
        self.port = free_port()
        self.metrics_port = free_port()
        self.pid_file = os.path.join(work_dir, "tcpfork.pid")
        self.profile_dir = os.path.join(work_dir, "profiles")
        self.log_path = os.path.join(work_dir, "master.log")
        self.config_path = os.path.join(work_dir, "tcpfork.yaml")
        self.worker_timeout_s = worker_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.max_workers = max_workers
        with open(self.config_path, "w") as f:
            f.write(f"workers: {workers}\n"
                    f"max_workers: {max_workers}\n"
                    f"worker_timeout: {worker_timeout_s}s\n"
                    f"drain_timeout: {drain_timeout_s}s\n"
                    f"idle_timeout: 60s\n"
                    f"log:\n  level: info\n"
                    f"profile:\n  dir: {self.profile_dir}\n  duration: {profile_duration_s}s\n"
                    + extra_yaml)
        cmd = [os.path.join(bin_dir, "tcpfork"), "-c", self.config_path, "--name", self.name,
               "--pid-file", self.pid_file, "--listen", f"127.0.0.1:{self.port}",
               "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.pid = self.proc.pid
        self.exit_status = None

    # --- HTTP -----------------------------------------------------------------------------------

    def get(self, path, timeout=10):
        """(status, body) of GET path on the admin port; (None, error) when it did not answer."""
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (OSError, urllib.error.URLError) as e:
            return None, str(e)

    def status(self):
        code, body = self.get("/status")
        return json.loads(body) if code == 200 else None

    def wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if self.get("/healthz", timeout=2)[0] == 200:
                return True
            time.sleep(0.1)
        return False

    # --- the process ----------------------------------------------------------------------------

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def is_worker(self, pid):
        return proc_parent(pid) == self.pid

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def quit(self, timeout):
        """SIGQUIT, then waits; returns the exit status, or None if it had to be killed."""
        if not self.alive():
            self.exit_status = self.proc.returncode
            return self.exit_status
        os.kill(self.pid, signal.SIGQUIT)
        try:
            self.exit_status = self.proc.wait(timeout=timeout)
            return self.exit_status
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        """Cleans up after the run, also on failure: the master and every worker of this run (by
        pid), and the segment. Does nothing more after a clean exit."""
        if self.alive():
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for pid in processes_of(self.name):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # A master that died cannot remove its segment's locator; after the report, nothing of the run stays.
        try:
            os.unlink(f"/dev/shm/{self.name}.stats")
        except OSError:
            pass
        self.log.close()

    def leftovers(self, seen_pids):
        """Everything this run should no longer have; [] when clean."""
        left = []
        for pid, start in sorted(seen_pids.items()):
            if proc_start_time(pid) == start:
                left.append(f"worker pid {pid} still alive")
        for pid in processes_of(self.name):
            if pid not in seen_pids:
                left.append(f"worker process {pid} of {self.name} still running")
        if os.path.exists(f"/dev/shm/{self.name}.stats"):
            left.append(f"stats segment locator /dev/shm/{self.name}.stats")
        if os.path.exists(self.pid_file):
            left.append(f"pidfile {self.pid_file}")
        if os.path.isdir(self.profile_dir):
            partial = [f for f in os.listdir(self.profile_dir) if f.endswith(".tmp")]
            if partial:
                left.append(f"unfinished profiles {partial}")
        return left

    def profiles_written(self):
        if not os.path.isdir(self.profile_dir):
            return 0
        return len([f for f in os.listdir(self.profile_dir) if f.endswith(".prof")])
