"""What the benchmarks take from the build tree (the handler modules beside
bin/), and a free loopback port for a server to listen on."""

import os
import socket


def free_port():
    """A port the kernel had free just now (a benchmark's server binds it
    next; nothing else on this machine races for it in a run)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _built(bin_dir, *parts):
    path = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "lib", "tcpfork", *parts)
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: build everything first (make build)")
    return path


def ack_module(bin_dir):
    """examples/handlers/ack.c."""
    return _built(bin_dir, "examples", "ack.so")


def journal_module(bin_dir):
    """handlers/journal."""
    return _built(bin_dir, "handlers", "journal.so")


def test_module(bin_dir):
    """test/modules/test_handler.c."""
    return _built(bin_dir, "test", "test_handler.so")
