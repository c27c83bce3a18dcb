"""bench_e2e against a real stack: stops at once on a refused key, and keeps its HTTP results when the
floor phase cannot reach the broker. Output kept in .artifacts/bench-*.txt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.broker import free_port
from services.stack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts"


def bench(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "loadtest.bench_e2e", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)
    ARTIFACTS.mkdir(exist_ok=True)
    took = time.monotonic() - t0
    (ARTIFACTS / f"bench-{name}.txt").write_text(
        f"exit {proc.returncode} after {took:.1f} s\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}")
    return proc


def test_another_institutions_key_stops_the_run_and_says_what_to_set(stack: Stack) -> None:
    # dev-key-h2 belongs to H2; the events name H1.
    proc = bench("forbidden", "--url", stack.url, "--rate", "50", "--duration", "30",
                 PRESETTLE_API_KEY="dev-key-h2:H1")
    assert proc.returncode == 2, proc.stderr
    assert "403" in proc.stderr and "institution H2" in proc.stderr, proc.stderr
    assert "set PRESETTLE_API_KEY=KEY:INSTITUTION" in proc.stderr
    assert "p50_ms" not in proc.stdout  # no figures from a run the service refused


def test_unknown_key_stops_the_run(stack: Stack) -> None:
    proc = bench("unauthorized", "--url", stack.url, "--api-key", "not-a-real-key:H1")
    assert proc.returncode == 2, proc.stderr
    assert "401" in proc.stderr and "PRESETTLE_API_KEYS" in proc.stderr


def test_http_results_survive_an_unreachable_broker(stack: Stack) -> None:
    nothing_there = free_port()
    proc = bench("no-broker", "--url", stack.url, "--rate", "20", "--duration", "1", "--warmup", "0",
                 "--floor-duration", "1", PRESETTLE_API_KEY="dev-key-h1",
                 PRESETTLE_EMBEDDED_BROKER_PORT=str(nothing_there))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    http_line = next(line for line in lines if line.startswith("http: "))
    assert "sent=20" in http_line and "errors=0" in http_line, http_line
    assert f"127.0.0.1:{nothing_there}" in proc.stderr and "floor phase failed" in proc.stderr
    result = json.loads(lines[-1])
    assert result["sent"] == 20 and result["p50_ms"] > 0
    assert result["floor_p50_ms"] is None and result["floor_error"]


def test_a_short_run_measures_http_and_the_floor(stack: Stack) -> None:
    proc = bench("ok", "--url", stack.url, "--rate", "20", "--duration", "1", "--warmup", "0",
                 "--floor-duration", "1", "--bootstrap", stack.bootstrap, PRESETTLE_API_KEY="dev-key-h1:H1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["sent"] == 20 and result["errors"] == 0 and result["floor_p50_ms"] > 0
    assert result["floor2_p50_ms"] > 0 and result["floor2_lost"] == 0  # the two-hop echo answered every record
    assert result["floor2_p50_ms"] >= result["floor_p50_ms"] * 0.5  # a real second hop, not the first re-read
    # The stack's processes were found and their CPU read from /proc.
    assert result["processes"] == {"broker": 1, "worker": 1, "ingress": 1, "sink": 1}, result["processes"]
    assert all(v is not None and v > 0 for v in result["cpu_ms_per_event"].values()), result["cpu_ms_per_event"]


def test_repeat_reports_each_phase(stack: Stack) -> None:
    proc = bench("repeat", "--url", stack.url, "--rate", "20", "--duration", "1", "--warmup", "0", "--idle", "0",
                 "--repeat", "2", "--floor-duration", "0", PRESETTLE_API_KEY="dev-key-h1:H1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("phase ")] == ["phase 1", "phase 2"]
    result = json.loads(lines[-1])
    assert [p["sent"] for p in result["phases"]] == [20, 20] and result["last_to_first_p99"] > 0
    assert result["cpu_ms_per_event_net"] is None  # --idle 0: no idle figures to take out


def test_bench_worker_drains_a_prefilled_topic() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    proc = subprocess.run([sys.executable, "-m", "loadtest.bench_worker", "--events", "60", "--partitions", "2",
                           "--timeout", "90"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=180)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "bench-worker.txt").write_text(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["decided"] == 60 and result["records_per_partition"] == 30  # every event has its audit record
    assert "error" not in result and {"events_per_s", "worker_cpu_ms_per_event", "broker_cpu_ms_per_event"} <= set(result)


def test_probe_fetch_wait_reports_each_wait() -> None:
    proc = subprocess.run([sys.executable, "-m", "loadtest.probe_fetch_wait", "--waits", "5,40", "--samples", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.strip().splitlines()[-1])["waits"]
    assert [r["fetch_wait_ms"] for r in rows] == [5, 40]
    assert all(r["hop_p50_ms"] > 0 and r["idle_broker_cpu_ms_per_s"] >= 0 for r in rows), rows
    bad = subprocess.run([sys.executable, "-m", "loadtest.probe_fetch_wait", "--waits", "x"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--waits" in bad.stderr
