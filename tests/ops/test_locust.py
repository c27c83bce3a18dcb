"""The Locust scenarios, headless for a few seconds against the running stack: proves every
scenario payload is valid, answered `evaluated`, and that the run writes CSV and its summary."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.stack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
ARTIFACTS = ROOT / ".artifacts"


def test_locustfile_imports_nothing_from_services() -> None:
    source = LOCUSTFILE.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import)\s+services\b", source, re.M), "runs on load-generator machines"
    assert "FastHttpUser" in source and "PRESETTLE_API_KEY" in source


@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed (test extra)")
def test_headless_run_has_no_failures_and_reports_percentiles(stack: Stack, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    env.update(PRESETTLE_API_KEY="dev-key-h1:H1,dev-key-h2:H2", PRESETTLE_THINK_S="0.1",
               PRESETTLE_TRIGGER_SHARE="0.3")
    prefix = tmp_path / "smoke"
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "6", "-r", "6", "-t", "6s",
         "--host", stack.url, "--csv", str(prefix), "--only-summary", "--stop-timeout", "5",
         "--loglevel", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = proc.stdout + proc.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "locust-smoke.txt").write_text(output)
    assert proc.returncode == 0, output[-3000:]

    stats = prefix.with_name("smoke_stats.csv")
    assert stats.exists() and prefix.with_name("smoke_failures.csv").exists()
    with stats.open(newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 20
    assert int(total["Failure Count"]) == 0, output[-3000:]
    scenes = {name for name in rows if name.startswith("/v1/events [")}
    assert {n.split()[1][1:] for n in scenes} >= {"1", "2", "7", "6", "10"}, scenes  # outpatient + pharmacy steps

    summary = output[output.index("PreSettle load test summary"):]
    assert re.search(r"failure ratio 0\.0000", summary), summary
    assert re.search(r"p50 \d+ ms, p95 \d+ ms, p99 \d+ ms", summary), summary
    assert "alerts seen per rule:" in summary


@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed (test extra)")
def test_a_refused_key_stops_locust_with_a_nonzero_exit(stack: Stack, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    env.update(PRESETTLE_API_KEY="dev-key-h2:H1", PRESETTLE_THINK_S="0.1")  # H2's key, H1's events
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "3", "-r", "3", "-t", "60s",
         "--host", stack.url, "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = proc.stdout + proc.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "locust-refused.txt").write_text(output)
    assert proc.returncode == 2, output[-3000:]
    assert "locust: stopped:" in output and "403" in output and "institution H2" in output, output[-3000:]
    assert "set PRESETTLE_API_KEY=KEY:INSTITUTION" in output
