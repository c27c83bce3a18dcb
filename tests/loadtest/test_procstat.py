"""loadtest/procstat.py: finds processes by listening port and reads their CPU time from /proc."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from loadtest import procstat

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_the_process_listening_on_a_port_is_found() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert procstat.pid_listening(port) == procstat.os.getpid()
    assert procstat.pid_listening(port) is None  # closed: nobody listens


def test_cpu_time_grows_with_work_and_a_gone_process_reads_none() -> None:
    pid = procstat.os.getpid()
    before = procstat.cpu_seconds(pid)
    assert before is not None
    total = 0
    while (procstat.cpu_seconds(pid) or 0) - before < 0.05:
        total += sum(range(10_000))
    assert procstat.cpu_seconds(2**22 + 7) is None  # above the largest pid Linux hands out


def test_per_event_arithmetic_and_idle_correction() -> None:
    before = {"broker": 1.0, "worker": 2.0, "ingress": None}
    after = {"broker": 1.5, "worker": 2.2, "ingress": 3.0}
    assert procstat.per_event_ms(before, after, 100) == {"broker": 5.0, "worker": 2.0, "ingress": None}
    idle = procstat.rate({"broker": 0.0, "worker": 0.0}, {"broker": 0.2, "worker": 0.1}, 2.0)
    assert idle == {"broker": 0.1, "worker": 0.05}
    net = procstat.per_event_ms(before, after, 100, idle, 1.0)
    assert net["broker"] == 4.0 and net["worker"] == 1.5
    assert procstat.per_event_ms(before, after, 0)["broker"] is None
