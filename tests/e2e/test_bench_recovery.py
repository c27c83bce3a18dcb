"""bench_recovery end to end on a tiny population: every restart serves again, and the JSON line has the figures.

A benchmark prints figures; this test checks only that it runs and reports them (no timed assertion).
Output kept in .artifacts/bench-recovery.txt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_bench_recovery_reports_persistent_and_memory_restarts(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_recovery", "--patients", "500", "--templates", "5",
         "--partitions", "2", "--timeout", "120", "--memory-timeout", "120", "--out-dir", str(tmp_path)],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=600)
    (ROOT / ".artifacts").mkdir(exist_ok=True)
    (ROOT / ".artifacts" / "bench-recovery.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["patients"] == 500 and result["store"] == "rocksdict://"
    for key in ("restart_s", "restart_kill9_s", "memory_restart_s", "rss_mb", "disk_bytes_per_patient"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, (key, result)
    assert not (tmp_path / "data").exists()  # the data directory is removed unless --keep
