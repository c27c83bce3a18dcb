"""A soak stopped with SIGTERM stops the stack it started and still prints its summary (loadtest/soak.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, stack_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def descendants(pid: int) -> dict[int, str]:
    table = processes()
    out: dict[int, str] = {}
    parents = {pid}
    while True:
        new = {p: cmd for p, (ppid, cmd) in table.items() if ppid in parents and p not in out}
        if not new:
            return out
        out.update(new)
        parents = set(new)


def alive(pid: int, cmdline: str) -> bool:
    """Still running (and not a zombie) as the same program."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return state != "Z" and now == cmdline


def test_sigterm_stops_the_stack_and_prints_the_summary(tmp_path: Path) -> None:
    env = stack_env()
    out = tmp_path / "soak.out"
    with out.open("wb") as stdout:
        soak = subprocess.Popen([sys.executable, "-m", "loadtest.soak", "--minutes", "5", "--rate", "5",
                                 "--partitions", "2", "--row-seconds", "3"],
                                cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.STDOUT)
    try:
        # Running: its stack is up (a row printed), its parts are its descendants.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and '"minute": 1' not in out.read_text():
            assert soak.poll() is None, out.read_text()[-2000:]
            time.sleep(0.5)
        assert '"minute": 1' in out.read_text(), out.read_text()[-2000:]
        parts = descendants(soak.pid)
        names = " ".join(parts.values())
        assert "services.stream" in names and "services.ingress" in names and "tansu" in names, names
        soak.send_signal(signal.SIGTERM)
        assert soak.wait(120) == 0
    finally:
        if soak.poll() is None:
            soak.kill()
    # Every part it started is gone (none orphaned), and the summary was printed.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p, cmd) for p, cmd in parts.items()):
        time.sleep(0.5)
    assert not [cmd for p, cmd in parts.items() if alive(p, cmd)]
    lines = [line for line in out.read_text().splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1])
    assert summary["interrupted"] is True
    assert summary["per_minute"] and summary["audit"].startswith("accepted "), summary  # the check ran
