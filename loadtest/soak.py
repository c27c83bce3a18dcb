"""Soak: a steady load for a long time; RSS per process and latency per minute.

    python -m loadtest.soak [--minutes 30] [--rate 50] [--budget-ms 300] [--workers 1] [--partitions 8]

(``make soak``; SOAK_MINUTES, SOAK_RATE, SOAK_WORKERS override.) Starts its own
stack (embedded broker unless PRESETTLE_KAFKA_BOOTSTRAP is set), posts events at
``rate`` per second (open loop, loadtest/chaos.py), and prints one line per
minute: answers by status, p50/p99 latency of that minute's ``evaluated``
answers, the resident memory (VmRSS) of the broker, each worker and the ingress,
and the machine's 1-minute load average. At the end it checks the audit topic
(every accepted event exactly one decision, none twice) and prints one JSON
object. A benchmark, not a test: nothing is asserted.

SIGTERM or SIGINT (Ctrl-C) ends it early: the load stops, the audit check runs on
what was sent, the summary prints (``"interrupted": true``) and the stack it
started (broker, workers, sink, ingress) is stopped. A second signal skips the
check and only stops the stack. (SIGKILL cannot be caught: its stack is left
running.)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from loadtest.chaos import Load, read_audit, verify


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def worker_rocksdb_mb(port: int) -> dict[str, float] | None:
    """The worker's RocksDB memory gauge (``presettle_worker_rocksdb_memory_bytes``), MB per part."""
    import re
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    return {m.group(1): round(float(m.group(2)) / 2**20, 1)
            for m in re.finditer(r'^presettle_worker_rocksdb_memory_bytes\{part="(\w+)"\} (\S+)$', text, re.M)}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1000, 1)


def minute_row(minute: int, batch: list[Any], rss: dict[str, float | None], load_1m: float) -> dict[str, Any]:
    """One minute's line: answers by status, p50/p99 of the ``evaluated`` answers (ms), RSS (MB)
    per process and the machine's 1-minute load average (figures measured under load say so)."""
    lat = [a.latency_s for a in batch if a.status == "evaluated"]
    return {
        "minute": minute,
        "answers": dict(collections.Counter(a.status for a in batch)),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "rss_mb": rss,
        "load_1m": round(load_1m, 2),
    }


def processes(stack: Any) -> dict[str, int]:
    out = {}
    if stack.broker is not None and stack.broker.proc is not None:
        out["broker"] = stack.broker.proc.pid
    for name, proc in stack.children():
        out[name] = proc.pid
    return out


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; True when ``stop`` was set first."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


def _on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """First SIGTERM/SIGINT: stop the load, check and summarise; a second one: cancel (the stack still stops)."""
    def handler(signum: int) -> None:
        if stop.is_set():
            task.cancel()
            return
        print(f"soak: {signal.Signals(signum).name}: stopping the load; checking the audit topic, then stopping "
              f"the stack (again to skip the check)", file=sys.stderr, flush=True)
        stop.set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handler, signum)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    from services.common.broker import free_port
    from services.common.settings import load_settings
    from services.stack import Stack

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    current = asyncio.current_task()
    assert current is not None
    _on_signals(loop, stop, current)
    env = dict(os.environ)
    env.setdefault("PRESETTLE_ENV", "test")
    env.update(PRESETTLE_WORKERS=str(args.workers), PRESETTLE_PARTITIONS=str(args.partitions),
               PRESETTLE_HTTP_PORT=str(free_port()), PRESETTLE_EMBEDDED_BROKER_PORT=str(free_port()),
               PRESETTLE_WORKER_METRICS_PORT=str(free_port()), PRESETTLE_TOPIC_PREFIX=f"soak{int(time.time())}")
    stack = Stack(load_settings(env), env=env, log_dir=Path(".artifacts/logs/soak"))
    minutes: list[dict[str, Any]] = []
    result: dict[str, Any] = {"rate": args.rate, "minutes": args.minutes, "workers": args.workers,
                              "partitions": args.partitions, "interrupted": False}
    try:
        # Started on a thread; a signal meanwhile is acted on once it is up (so every part is stopped).
        await asyncio.shield(asyncio.to_thread(stack.start))
        try:
            await asyncio.to_thread(stack.wait_healthy, 90, stop.is_set)
        except InterruptedError:
            result.update(interrupted=True, per_minute=minutes, audit="not checked (stopped during start-up)")
            return result
        load = Load(stack.url, rate=args.rate, budget_ms=args.budget_ms, patients=args.patients)
        runner = loop.create_task(load.run(args.minutes * 60))
        seen = 0
        rows = int(args.minutes * 60 / args.row_seconds)
        for minute in range(1, rows + 1):
            if stop.is_set() or await _sleep_unless(stop, args.row_seconds):
                break
            batch = list(load.answers[seen:])
            seen += len(batch)
            row = minute_row(minute, batch, {name: rss_mb(pid) for name, pid in processes(stack).items()},
                             os.getloadavg()[0])
            # Beside the worker's RSS: what RocksDB holds of it (block cache, memtables charged to it).
            row["worker_rocksdb_mb"] = await asyncio.to_thread(worker_rocksdb_mb, stack.settings.worker_metrics_port)
            minutes.append(row)
            print(json.dumps(row), flush=True)
        if stop.is_set():
            load.stop()
        await runner
        result["interrupted"] = stop.is_set()
        if not stop.is_set():
            await asyncio.sleep(3)
        audit = await read_audit(stack.bootstrap, stack.settings.decisions_topic,
                                 timeout_s=60 if stop.is_set() else 600)
        verdict = verify(load.answers, audit, {a.event["event_id"]: {"engine_status": "evaluated", "replayed": True,
                                                                    "decision_id": a.decision_id}
                                               for a in load.accepted()})
        result.update(answers=load.counts(), audit=verdict.summary(), per_minute=minutes)
        return result
    except asyncio.CancelledError:
        result.update(interrupted=True, per_minute=minutes, audit="not checked (a second signal)")
        return result
    finally:
        await asyncio.shield(asyncio.to_thread(stack.stop))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--budget-ms", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--row-seconds", type=float, default=60.0, help="seconds per reported row (tests: a few)")
    args = parser.parse_args(argv)
    result = asyncio.run(soak(args))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
