"""Restart-to-serving of a worker holding N patients: persistent store (clean stop, kill -9) and memory://.

    python -m loadtest.bench_recovery --patients 1000000 [--templates 2000] [--partitions 8]
                                      [--memory-timeout 900] [--out-dir DIR]

1. **Patient states through the engine.** ``--templates`` patients of loadtest.bench_rules.Gen
   (chronic outpatients, pharmacy top-ups, inpatient stays, dialysis; ~18 events each over 180
   days) are run through ``services.rules.decision.handle_event`` as the worker runs them; the N
   patients of the run reuse those states in turn under their own ids (the engine runs at
   ~3,000 events/s here: a million distinct histories would take hours to build). A state holds
   no patient id, so a reused state is byte for byte what that history gives any patient.
2. **Changelog and store**, as a worker that decided those events leaves them: every state on
   the state changelog (partition = the patient id's murmur2 partition, as the ingress keys
   events), then written into the worker's RocksDB store (faust's own store, this worker's data
   directory) with the offset of its changelog record.
3. **Restarts** of a stack on the embedded broker (ingress + one worker), each timed from the
   worker's process start to the first ``/healthz`` 200 (a real round trip through the worker,
   which answers only once its table is recovered): after a clean stop (SIGTERM), after
   ``kill -9``, and with ``PRESETTLE_STORE=memory://`` (the table rebuilt from the whole
   changelog; given up after ``--memory-timeout`` s, reported as null with the time waited).
4. **Footprint:** the worker's RSS after the persistent restart, and the data directory's bytes
   on disk per patient.

The last line printed is one JSON object: ``{"patients", "store", "restart_s", "restart_kill9_s",
"memory_restart_s", "rss_mb", "disk_bytes_per_patient", …}``. Run it on an otherwise idle
machine; it prints the load average beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
import uuid
from typing import Any

import orjson

from services.common.broker import free_port


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_templates(count: int, days: int, seed: int) -> list[bytes]:
    """``count`` patient states, each the result of one generated patient's events run through the engine."""
    from loadtest.bench_rules import Gen
    from services.rules import decision as dec
    from services.rules.engine import Engine

    engine = Engine.load()
    gen = Gen(engine, seed)
    states: list[bytes] = []
    for pid in range(count):
        state: bytes | None = None
        for _, event in gen.patient(pid, days):
            new, _ = dec.handle_event(engine, state, event)
            if new is not None:
                state = new
        if state is not None:
            states.append(state)
    return states


def patient_key(i: int) -> bytes:
    return f"BR{i:010d}".encode()


async def write_changelog(bootstrap: str, topic: str, partitions: int, n: int,
                          templates: list[bytes], security: dict[str, Any] | None = None) -> dict[int, int]:
    """Every patient's state on the changelog; return the last offset per partition."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    all_partitions = list(range(partitions))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024,
                                max_request_size=8 * 1024 * 1024, acks=1, **(security or {}))
    await producer.start()
    last: dict[int, int] = {}
    pending: list[Any] = []

    async def drain() -> None:
        for fut in pending:
            md = await fut
            last[md.partition] = max(last.get(md.partition, -1), md.offset)
        pending.clear()

    try:
        t0 = time.monotonic()
        for i in range(n):
            key = patient_key(i)
            partition = choose(key, all_partitions, all_partitions)
            pending.append(await producer.send(topic, templates[i % len(templates)], key=key, partition=partition))
            if len(pending) >= 20_000:
                await drain()
                if i and i % 200_000 < 20_000:
                    _say(f"  changelog: {i + 1:,} records ({(i + 1) / (time.monotonic() - t0):,.0f}/s)")
        await drain()
    finally:
        await producer.stop()
    return last


def write_store(app_id: str, datadir: pathlib.Path, partitions: int, n: int, templates: list[bytes],
                last: dict[int, int], changelog: str) -> None:
    """The worker's RocksDB store as the worker leaves it: every state, and each partition's changelog offset."""
    import faust
    from aiokafka.partitioner import DefaultPartitioner
    from faust.types import TP

    from services.contracts.topics import STATE_TABLE
    from services.stream import store

    store.register()
    app = faust.App(app_id, store="rocksdict://", datadir=str(datadir), topic_partitions=partitions)
    table = app.Table(STATE_TABLE, default=None, partitions=partitions, key_type=bytes, value_type=bytes)
    data = table.data
    assert isinstance(data, store.Store)
    choose = DefaultPartitioner()
    all_partitions = list(range(partitions))
    from rocksdict import WriteBatch

    batches: dict[int, Any] = {}
    for i in range(n):
        key = patient_key(i)
        partition = choose(key, all_partitions, all_partitions)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = WriteBatch(raw_mode=True)
        batch.put(key, templates[i % len(templates)])
        if len(batch) >= 10_000:
            data._db_for_partition(partition).write(batch)
            batches[partition] = WriteBatch(raw_mode=True)
    for partition, batch in batches.items():
        data._db_for_partition(partition).write(batch)
    for partition, offset in last.items():
        data.set_persisted_offset(TP(changelog, partition), offset)
    for db in data._dbs.values():
        db.flush()
        db.close()
    data._dbs.clear()
    del app, table, data
    gc.collect()


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def disk_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def timed_start(stack: Any, timeout: float) -> float:
    t0 = time.monotonic()
    stack.start_worker(0)
    stack.wait_healthy(timeout)
    return round(time.monotonic() - t0, 2)


def stop_worker(stack: Any) -> None:
    proc = stack.workers.pop(0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from services.common.kafka_security import aiokafka_kwargs
    from services.common.settings import load_settings
    from services.stack import Stack

    root = pathlib.Path(args.out_dir or tempfile.mkdtemp(prefix="presettle-bench-recovery-"))
    data_dir = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    env.update(
        PRESETTLE_ENV="test", PRESETTLE_EMBEDDED_BROKER_PORT=str(free_port()), PRESETTLE_HTTP_PORT=str(free_port()),
        PRESETTLE_WORKER_METRICS_PORT=str(free_port()), PRESETTLE_TOPIC_PREFIX=f"br{uuid.uuid4().hex[:8]}",
        PRESETTLE_PARTITIONS=str(args.partitions), PRESETTLE_DATA_DIR=str(data_dir), PRESETTLE_STORE="rocksdict://",
        PRESETTLE_WORKERS="1", PRESETTLE_BUDGET_MS="5000", PRESETTLE_LOG_LEVEL="WARNING",
    )
    settings = load_settings(env)
    stack = Stack(settings, env=env, log_dir=root / "logs")
    result: dict[str, Any] = {"patients": args.patients, "store": "rocksdict://"}
    try:
        t0 = time.monotonic()
        templates = build_templates(args.templates, args.days, args.seed)
        sizes = sorted(len(s) for s in templates)
        result["state_bytes_median"] = sizes[len(sizes) // 2]
        result["state_bytes_mean"] = round(sum(sizes) / len(sizes))
        _say(f"{len(templates)} patient states through the engine in {time.monotonic() - t0:.1f} s "
             f"(median {result['state_bytes_median']} B)")
        stack.start_broker()
        changelog = settings.state_changelog_topic
        t0 = time.monotonic()
        last = asyncio.run(write_changelog(stack.bootstrap, changelog, args.partitions, args.patients, templates,
                                          aiokafka_kwargs(settings)))
        _say(f"changelog: {args.patients:,} records in {time.monotonic() - t0:.1f} s")
        worker_dir = data_dir / "worker-0"
        t0 = time.monotonic()
        write_store(settings.worker_app_id, worker_dir, args.partitions, args.patients, templates, last, changelog)
        _say(f"store: {args.patients:,} states in {time.monotonic() - t0:.1f} s")

        stack.start_ingress()
        result["first_start_s"] = timed_start(stack, args.timeout)
        _say(f"first start (store already filled): {result['first_start_s']} s")

        stop_worker(stack)
        result["restart_s"] = timed_start(stack, args.timeout)
        result["rss_mb"] = rss_mb(stack.workers[0].pid)
        _say(f"restart after a clean stop: {result['restart_s']} s, worker RSS {result['rss_mb']} MB")

        stack.kill_worker(0)
        result["restart_kill9_s"] = timed_start(stack, args.timeout)
        _say(f"restart after kill -9: {result['restart_kill9_s']} s")
        on_disk = disk_bytes(worker_dir)
        result["disk_bytes"] = on_disk
        result["disk_bytes_per_patient"] = round(on_disk / args.patients, 1)

        stop_worker(stack)
        if args.memory_timeout > 0:
            stack.env["PRESETTLE_STORE"] = "memory://"
            t0 = time.monotonic()
            try:
                result["memory_restart_s"] = timed_start(stack, args.memory_timeout)
                result["memory_rss_mb"] = rss_mb(stack.workers[0].pid)
            except TimeoutError:
                result["memory_restart_s"] = None
                result["memory_gave_up_after_s"] = round(time.monotonic() - t0, 1)
            _say(f"memory:// restart: {result.get('memory_restart_s')} s")
        else:
            result["memory_restart_s"] = None
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=100_000)
    p.add_argument("--templates", type=int, default=2000, help="distinct histories run through the engine")
    p.add_argument("--days", type=int, default=180, help="days of history per generated patient")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a persistent restart")
    p.add_argument("--memory-timeout", type=float, default=900.0, help="0 skips the memory:// restart")
    p.add_argument("--out-dir", help="keep logs (and with --keep the data) here")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    args = p.parse_args(argv)
    if args.patients < 1 or args.templates < 1:
        p.error("--patients and --templates must be positive")
    result = run(args)
    print(orjson.dumps(result).decode(), flush=True)
    return result


if __name__ == "__main__":
    main()
