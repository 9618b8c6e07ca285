"""The soak's clients: `tcpfork-client bench` processes for throughput, and a
few lingering connections driven from the soak's own loop, each sending one
request every couple of seconds and checking its ack. A lingering client
notices that the server closed its connection only when it next sends, as a
lazy real client would, so a worker draining it stays in the draining state
for up to that long (and meets the chaos there: TTIN on its index, kill -9,
SIGSTOP).

Both report the same figures as the bench's --json: sent, acked, errors,
connects failed, connections closed by the server and the acks lost on them,
and requests unacked on connections still open at the end.
"""

import errno
import json
import os
import signal
import socket
import struct
import subprocess
import time


class Load:
    """One tcpfork-client bench process, stopped with SIGINT, its report read from --json."""

    def __init__(self, bin_dir, work_dir, port, name, conns, window, seconds):
        self.name = name
        slug = name.replace("/", "_")
        self.json_path = os.path.join(work_dir, f"client-{slug}.json")
        self.out = open(os.path.join(work_dir, f"client-{slug}.log"), "wb")
        # -d only bounds it should the soak itself die; the soak stops it with SIGINT.
        cmd = [os.path.join(bin_dir, "tcpfork-client"), "bench", "--addr", f"127.0.0.1:{port}", "-c", str(conns),
               "-w", str(window), "-d", str(seconds + 120), "--drain", "10", "-q", "--json", self.json_path]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out)
        self.exit_code = None
        self.report = None

    def stop(self, timeout):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
        self.out.close()
        try:
            with open(self.json_path) as f:
                self.report = json.load(f)
        except (OSError, ValueError):
            self.report = None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def submit_frame(n):
    ident = b"%08d" % (n % 10**8)
    payload = b"soak"
    return struct.pack(">I", 4 + 1 + len(ident) + len(payload)) + b"\x02" + ident + payload


def ack_frame(n):
    return struct.pack(">I", 14) + b"\x81" + (b"%08d" % (n % 10**8)) + b"\x00"


class _Lingering:
    def __init__(self):
        self.sock = None
        self.peer_closed = False
        self.next_id = 0
        self.owed = []   # ids sent, not yet acked, oldest first
        self.inbuf = b""
        self.next_send = 0.0


class LingeringClients:
    """`count` connections, one request each every `period` seconds; driven by tick()."""

    def __init__(self, port, count, period):
        self.port = port
        self.period = period
        self.clients = [_Lingering() for _ in range(count)]
        self.report = {"sent": 0, "acked": 0, "errors_total": 0, "errors": {"wrong_ack": 0},
                       "connects_failed": 0, "connects_reset": 0, "closed_by_server": 0, "unacked_on_closed": 0,
                       "unacked_at_end": 0}
        self.connect_failures = []  # (monotonic time, error) of each
        for i, c in enumerate(self.clients):
            c.next_send = time.monotonic() + period * i / count  # spread the sends out

    def tick(self):
        now = time.monotonic()
        for c in self.clients:
            if c.sock is not None:
                self._read(c)
            if now < c.next_send:
                continue
            c.next_send = now + self.period
            if c.sock is not None and c.peer_closed:
                self._closed_by_server(c)
            if c.sock is None and not self._connect(c):
                continue
            try:
                c.sock.sendall(submit_frame(c.next_id))
            except OSError:
                self._closed_by_server(c)
                continue
            c.owed.append(c.next_id)
            c.next_id += 1
            self.report["sent"] += 1

    def stop(self, timeout):
        """Waits up to `timeout` for the acks owed on open connections, then closes everything."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(c.sock and c.owed and not c.peer_closed for c in self.clients):
            for c in self.clients:
                if c.sock is not None:
                    self._read(c)
            time.sleep(0.05)
        for c in self.clients:
            if c.sock is None:
                continue
            if c.peer_closed:
                self._closed_by_server(c)
            else:
                self.report["unacked_at_end"] += len(c.owed)
                c.sock.close()
                c.sock = None

    def _connect(self, c):
        try:
            c.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            c.sock.setblocking(False)
        except OSError as e:
            self.report["connects_failed"] += 1
            if e.errno == errno.ECONNRESET:  # as tcpfork-client counts connects_reset
                self.report["connects_reset"] += 1
            self.connect_failures.append((time.monotonic(), errno.errorcode.get(e.errno, str(e))))
            c.sock = None
            return False
        c.peer_closed, c.owed, c.inbuf = False, [], b""
        return True

    def _read(self, c):
        while not c.peer_closed:
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                break
            except OSError as e:  # reset: the same as a close, seen at the next send
                if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                    raise
                data = b""
            if not data:
                c.peer_closed = True
                break
            c.inbuf += data
        while len(c.inbuf) >= 14:
            frame, c.inbuf = c.inbuf[:14], c.inbuf[14:]
            if not c.owed or frame != ack_frame(c.owed[0]):
                self.report["errors_total"] += 1
                self.report["errors"]["wrong_ack"] += 1
                if c.owed:
                    c.owed.pop(0)
                continue
            c.owed.pop(0)
            self.report["acked"] += 1

    def _closed_by_server(self, c):
        self.report["closed_by_server"] += 1
        self.report["unacked_on_closed"] += len(c.owed)
        c.sock.close()
        c.sock = None
        c.peer_closed = False
        c.owed = []

    def kill(self):
        for c in self.clients:
            if c.sock is not None:
                c.sock.close()
                c.sock = None
