"""CPU time of the stack's processes from /proc (Linux), for the benchmarks' "CPU ms per event".

The processes are found without being told their pids: the broker and the ingress by the TCP
port they listen on (``/proc/net/tcp*`` → socket inode → ``/proc/<pid>/fd``), the workers by
their command line (``-m services.stream``) and the broker they were started against
(``PRESETTLE_KAFKA_BOOTSTRAP`` in their environment). Only this user's processes can be read,
which is all a benchmark of one's own stack needs. Where /proc is missing every figure is None.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of one process (its threads included); None once it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime (fields 14 and 15 of stat)


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def pid_listening(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (None if not found or not readable)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(entry.name)
        except OSError:
            continue
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def worker_pids(bootstrap: str, module: str = "services.stream") -> list[int]:
    """Worker processes (``python -m services.stream``, or ``module``) started against ``bootstrap``."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if module not in argv or "-m" not in argv:
            continue
        if _environ(int(entry.name)).get("PRESETTLE_KAFKA_BOOTSTRAP") == bootstrap:
            found.append(int(entry.name))
    return sorted(found)


def stack_pids(http_port: int, bootstrap: str) -> dict[str, list[int]]:
    """{"broker": [...], "worker": [...], "ingress": [...], "sink": [...]} for the stack at these addresses.

    The decision-log sink (``python -m services.decisionlog.sink``) is off the request path but
    shares the machine: its CPU per event belongs in the picture (``[]`` when it is not running).

    The broker is looked up only on a loopback bootstrap (an embedded broker on this machine).
    """
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    broker = pid_listening(int(port)) if host in ("127.0.0.1", "localhost") and port.isdigit() else None
    ingress = pid_listening(http_port)
    return {"broker": [broker] if broker else [], "worker": worker_pids(bootstrap),
            "ingress": [ingress] if ingress else [], "sink": worker_pids(bootstrap, "services.decisionlog.sink")}


def cpu_of(pids: dict[str, list[int]]) -> dict[str, float | None]:
    """CPU seconds per role (summed over its processes); None for a role without a readable process."""
    out: dict[str, float | None] = {}
    for role, group in pids.items():
        values = [v for v in (cpu_seconds(p) for p in group) if v is not None]
        out[role] = sum(values) if values else None
    return out


def rate(before: dict[str, float | None], after: dict[str, float | None], seconds: float) -> dict[str, float | None]:
    """CPU seconds per second per role between two samples (the idle rate)."""
    out: dict[str, float | None] = {}
    for role, end in after.items():
        start = before.get(role)
        out[role] = None if end is None or start is None or seconds <= 0 else (end - start) / seconds
    return out


def per_event_ms(before: dict[str, float | None], after: dict[str, float | None], events: int,
                 idle_rate: dict[str, float | None] | None = None, seconds: float = 0.0) -> dict[str, float | None]:
    """CPU ms per event per role between two samples; with ``idle_rate`` (CPU s per s when idle), net of idle."""
    out: dict[str, float | None] = {}
    for role, end in after.items():
        start = before.get(role)
        if end is None or start is None or events <= 0:
            out[role] = None
            continue
        used = end - start
        if idle_rate is not None:
            rate = idle_rate.get(role)
            used = used - (rate or 0.0) * seconds
        out[role] = round(used * 1000 / events, 3)
    return out
