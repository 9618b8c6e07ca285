"""One field of /proc/PID/status, for the bench scripts' memory figures."""


def status_bytes(pid, field):
    """`field` ("VmRSS", "VmHWM", ...) of process `pid` in bytes, or None when
    the process or the field is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
