"""Failover gap with two workers: ``kill -9`` of one under load, with and without standby replicas.

    python -m loadtest.bench_failover [--patients 200000] [--standby 1 0] [--runs 1] [--rate 40]
                                      [--partitions 8] [--after 60] [--out-dir DIR]

For each ``PRESETTLE_STANDBY_REPLICAS`` value in ``--standby`` (and each of ``--runs``): a stack on
the embedded broker (ingress + two workers, persistent store, fresh data directories) whose state
changelog already holds ``--patients`` patient states (built through the engine as in
loadtest/bench_recovery.py); both workers recover them and report ``/ready``; then an open-loop
load of ``--rate`` events/s (300 ms budget) runs, and after ``--warmup`` s worker 1 is killed
with SIGKILL. Its partitions are unserved until the other worker has taken them over: it joins
the new group generation and, without a standby copy, rebuilds them from the changelog first.

**Gap**, per partition: from the kill to the first request of that partition decided after its
first failed one (timeout / unavailable / error) — the end of its outage; 0 for a partition that
never failed. The run's gap is the largest; null if a partition never answered again. Isolated
failures after that (a busy machine) are counted apart (``failed_after_recovery``).

The last line printed is one JSON object: ``{"patients", "rate", "runs": [{"standby", "gap_s",
"failed", "sent", …}], "gap_s": {"1": [...], "0": [...]}, "loadavg"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson

from loadtest.bench_e2e import Pool, Traffic
from loadtest.bench_recovery import build_templates, write_changelog
from services.common.broker import free_port

BUDGET_MS = 2000  # generous: 'timeout' means unserved, not a slow answer on a busy machine


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def load(url: str, rate: float, duration: float, kill_at: float, kill: Any,
               partitions: int) -> list[tuple[float, int, str]]:
    """Open-loop load; ``kill()`` is called ``kill_at`` s in. Returns (send time relative to the kill,
    the event's partition, outcome)."""
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    all_partitions = list(range(partitions))
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pool = Pool(host, port)  # loadtest/bench_e2e.py: a minimal keep-alive client (httpx's pool is slow here)
    traffic = Traffic("H1", patients=20_000, seed=11)
    results: list[tuple[float, int, str]] = []
    t_kill: list[float] = []

    async def one(event: dict[str, Any]) -> None:
        body = orjson.dumps(event)
        partition = choose(event["patient"]["id"].encode(), all_partitions, all_partitions)
        sent = time.monotonic()
        request = (f"POST /v1/events?budget_ms={BUDGET_MS} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Content-Type: application/json\r\nX-API-Key: dev-key-h1\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        try:
            status, payload = await asyncio.wait_for(pool.post(request), 30)
            outcome = orjson.loads(payload)["engine_status"] if status == 200 else f"http-{status}"
        except Exception as exc:
            outcome = type(exc).__name__
        results.append((sent, partition, outcome))

    start = time.monotonic()
    tasks = []
    for n in range(int(rate * duration)):
        due = start + n / rate
        if not t_kill and due - start >= kill_at:
            t_kill.append(time.monotonic())
            kill()
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(traffic.event())))
    await asyncio.gather(*tasks)
    killed_at = t_kill[0] if t_kill else start + kill_at
    return [(round(t - killed_at, 3), p, outcome) for t, p, outcome in sorted(results)]


def gaps(results: list[tuple[float, int, str]]) -> tuple[dict[int, float], int]:
    """Per partition, the end of its outage: the send time (after the kill) of the first request decided
    after the partition's first failed one — 0 if none failed (the surviving worker's own partitions
    may still pause in the rebalance), inf if it never answered again. Also: the failures later than
    that (isolated timeouts on a busy machine, not the failover)."""
    out: dict[int, float] = {}
    later = 0
    for partition in sorted({p for _, p, _ in results}):
        after = [(t, outcome) for t, p, outcome in results if p == partition and t >= 0]
        first_failure = next((i for i, (_, outcome) in enumerate(after) if outcome != "evaluated"), None)
        if first_failure is None:
            out[partition] = 0.0
            continue
        back = next((i for i in range(first_failure, len(after)) if after[i][1] == "evaluated"), None)
        if back is None:
            out[partition] = float("inf")
            continue
        out[partition] = round(after[back][0], 2)
        later += sum(1 for _, outcome in after[back:] if outcome != "evaluated")
    return out, later


def one_run(args: argparse.Namespace, standby: int, templates: list[bytes], root: pathlib.Path) -> dict[str, Any]:
    from services.common.kafka_security import aiokafka_kwargs
    from services.common.settings import load_settings
    from services.stack import Stack

    run_dir = root / f"standby{standby}-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    metrics_port = free_port()
    env.update(
        PRESETTLE_ENV="test", PRESETTLE_EMBEDDED_BROKER_PORT=str(free_port()), PRESETTLE_HTTP_PORT=str(free_port()),
        PRESETTLE_WORKER_METRICS_PORT=str(metrics_port), PRESETTLE_TOPIC_PREFIX=f"bf{uuid.uuid4().hex[:8]}",
        PRESETTLE_PARTITIONS=str(args.partitions), PRESETTLE_DATA_DIR=str(run_dir / "data"),
        PRESETTLE_STORE="rocksdict://", PRESETTLE_WORKERS="2", PRESETTLE_STANDBY_REPLICAS=str(standby),
        PRESETTLE_BUDGET_MS=str(BUDGET_MS), PRESETTLE_LOG_LEVEL="WARNING",
    )
    settings = load_settings(env)
    stack = Stack(settings, env=env, log_dir=run_dir / "logs")
    out: dict[str, Any] = {"standby": standby}
    try:
        stack.start_broker()
        if args.patients:
            asyncio.run(write_changelog(stack.bootstrap, settings.state_changelog_topic, args.partitions,
                                        args.patients, templates, aiokafka_kwargs(settings)))
        t0 = time.monotonic()
        stack.start_worker(0)
        stack.start_worker(1)
        stack.start_ingress()
        stack.wait_healthy(args.timeout)
        deadline = time.monotonic() + args.timeout
        while not (ready(metrics_port) and ready(metrics_port + 1)) and time.monotonic() < deadline:
            time.sleep(0.5)
        out["initial_recovery_s"] = round(time.monotonic() - t0, 1)
        _say(f"standby {standby}: both workers ready after {out['initial_recovery_s']} s; settling {args.settle} s")
        time.sleep(args.settle)  # standbys catch up with the changelog

        def kill() -> None:
            stack.workers[1].send_signal(signal.SIGKILL)  # reaped by stack.stop()
            out["killed_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # to read the logs by

        results = asyncio.run(load(stack.url, args.rate, args.warmup + args.after, args.warmup, kill,
                                   args.partitions))
        failed = [t for t, _, outcome in results if t >= 0 and outcome != "evaluated"]
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "requests.json").write_bytes(orjson.dumps(results))  # (s after the kill, partition, outcome)
        per_partition, later = gaps(results)
        worst = max(per_partition.values(), default=0.0)
        out.update(
            sent=len(results), failed=len(failed),
            failed_before_kill=sum(1 for t, _, outcome in results if t < 0 and outcome != "evaluated"),
            failed_after_recovery=later,
            gap_s=None if worst == float("inf") else worst,  # None: a partition never answered again
            partition_gaps_s={str(p): (None if g == float("inf") else g) for p, g in per_partition.items()},
            outcomes=sorted({outcome for _, _, outcome in results}),
        )
        _say(f"standby {standby}: gap {out['gap_s']} s, {len(failed)} of {len(results)} requests not decided")
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(run_dir / "data", ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=200_000, help="patient states on the changelog before the run")
    p.add_argument("--templates", type=int, default=500)
    p.add_argument("--standby", type=int, nargs="+", default=[1, 0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--rate", type=float, default=40.0)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--after", type=float, default=60.0, help="seconds of load after the kill")
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--out-dir")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    if args.patients < 0 or args.runs < 1 or args.rate <= 0:
        p.error("--patients >= 0, --runs >= 1, --rate > 0")
    root = pathlib.Path(args.out_dir or tempfile.mkdtemp(prefix="presettle-bench-failover-"))
    templates = build_templates(args.templates, 180, 7) if args.patients else []
    runs = [one_run(args, standby, templates, root) for _ in range(args.runs) for standby in args.standby]
    result = {
        "patients": args.patients, "rate": args.rate, "partitions": args.partitions, "runs": runs,
        "gap_s": {str(s): [r["gap_s"] for r in runs if r["standby"] == s] for s in args.standby},
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(orjson.dumps(result).decode(), flush=True)
    return result


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
