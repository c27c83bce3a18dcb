"""Worker throughput: pre-fill the events topic, start one worker, time how fast it drains.

    python -m loadtest.bench_worker [--events 4000] [--partitions 8]

Starts its own embedded broker (or uses ``PRESETTLE_KAFKA_BOOTSTRAP``) with a fresh topic
prefix, writes ``--events`` events of bench_e2e's synthetic outpatients to the events topic as
the ingress would (keyed by patient id, validated and normalised by the event contract, with
reply headers, so the worker also replies), then starts one worker process
(``python -m services.stream``) and follows the audit topic's end offsets. From the first
decision to the last it reports the drained events per second and the worker's and the
broker's CPU ms per event (from /proc). The figures are of the worker's whole per-event path:
state read and write (changelog), rules, reply, audit record, offset commits.

The broker must not be the bottleneck: the embedded broker (Tansu 0.6, memory storage) answers
a fetch in time proportional to the partition's length, so the default keeps every partition
of every topic under about 600 records (4,000 events over 8 partitions: ≈ 500 events, 500
changelog and 500 audit records per partition). Larger ``--events`` or fewer ``--partitions``
measure the broker instead; the JSON line names ``records_per_partition``.

The last line printed is one JSON object. A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from loadtest import procstat
from loadtest.bench_e2e import Traffic


async def prefill(settings: Any, events: int, security: dict[str, Any]) -> float:
    """Write the events as the ingress would; return the seconds it took."""
    from aiokafka import AIOKafkaProducer

    from services.contracts import envelope as env
    from services.contracts.event import Event

    traffic = Traffic("H1", patients=max(100, events // 4))
    reply_topic = settings.reply_topic(settings.instance_id)
    # The reply topic exists, as the ingress would have created it: a worker replying to a missing
    # topic waits for its metadata on every reply, and the bench would measure that instead.
    from services.common.broker import ensure_topics
    await ensure_topics(settings.bootstrap, {reply_topic: settings.partitions}, security=security)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5, acks=1, **security)
    await producer.start()
    t0 = time.perf_counter()
    try:
        deliveries = []
        for n in range(events):
            event = Event.model_validate(traffic.event())
            headers = [(env.CORRELATION_ID, f"c{n}".encode()), (env.REPLY_TO, reply_topic.encode()),
                       (env.REPLY_PARTITION, str(n % settings.partitions).encode())]
            deliveries.append(await producer.send(settings.events_topic, orjson.dumps(event.to_wire()),
                                                  key=event.patient.id.encode(), headers=headers))
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


async def decided(settings: Any, security: dict[str, Any]) -> Any:
    """A function returning how many audit records there are, counted by reading them.

    Not the sum of the audit topic's end offsets: the embedded broker (Tansu 0.6) reports a
    partition's end as the first offset of its last record batch + 1, so the records after the
    first of the last batch went uncounted — the bench reported "only 56 of 60 decided" for a
    worker that had decided all 60 (services/common/partition_ends.py)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=50, **security)
    await consumer.start()
    tps = [TopicPartition(settings.decisions_topic, p) for p in range(settings.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    seen = 0

    async def count() -> int:
        nonlocal seen
        for records in (await consumer.getmany(timeout_ms=50)).values():
            seen += len(records)
        return seen
    count.consumer = consumer  # type: ignore[attr-defined]
    return count


async def drain(stack: Any, events: int, timeout: float, security: dict[str, Any]) -> dict[str, Any]:
    count = await decided(stack.settings, security)
    try:
        broker_pid = stack.broker.proc.pid if stack.broker and stack.broker.proc else None
        proc = stack.start_worker(0)
        started = time.perf_counter()
        first: tuple[float, int, float | None, float | None] | None = None
        done = 0
        deadline = started + timeout
        while time.perf_counter() < deadline:
            done = await count()
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done, procstat.cpu_seconds(proc.pid),
                         procstat.cpu_seconds(broker_pid) if broker_pid else None)
            if done >= events:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with code {proc.returncode}")
            await asyncio.sleep(0.1)
        end = (time.perf_counter(), done, procstat.cpu_seconds(proc.pid),
               procstat.cpu_seconds(broker_pid) if broker_pid else None)
    finally:
        await count.consumer.stop()
    if first is None:
        return {"decided": done, "error": f"no decision within {timeout} s"}
    drained = end[1] - first[1]
    seconds = end[0] - first[0]

    def per_event(a: float | None, b: float | None) -> float | None:
        return round((b - a) * 1000 / drained, 3) if a is not None and b is not None and drained > 0 else None
    return {
        "decided": done,
        "first_decision_after_s": round(first[0] - started, 2),
        "drained": drained,
        "drain_s": round(seconds, 2),
        "events_per_s": round(drained / seconds, 1) if seconds > 0 else None,
        "worker_cpu_ms_per_event": per_event(first[2], end[2]),
        "broker_cpu_ms_per_event": per_event(first[3], end[3]),
        **({"error": f"only {done} of {events} decided within {timeout} s"} if done < events else {}),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from services.common.broker import free_port
    from services.common.kafka_security import aiokafka_kwargs
    from services.common.settings import load_settings
    from services.stack import Stack

    env = dict(os.environ)
    # A data directory of its own: the worker's RocksDB store of an earlier run (or of `make run`) would
    # be re-seeded into this run's empty changelog and its patients' states carried over.
    data_dir = tempfile.mkdtemp(prefix="presettle-bench-worker-")
    env.update(PRESETTLE_TOPIC_PREFIX=f"benchw{uuid.uuid4().hex[:6]}", PRESETTLE_PARTITIONS=str(args.partitions),
               PRESETTLE_DATA_DIR=data_dir,
               PRESETTLE_WORKER_METRICS_PORT="0", PRESETTLE_INSTANCE_ID=f"benchw-{os.getpid()}",
               PRESETTLE_HTTP_PORT=str(free_port()))
    if not env.get("PRESETTLE_KAFKA_BOOTSTRAP"):
        env["PRESETTLE_EMBEDDED_BROKER_PORT"] = str(free_port())
    settings = load_settings(env)
    logs = Path(".artifacts") / "logs" / f"bench-worker-{time.strftime('%Y%m%dT%H%M%S')}"
    stack = Stack(settings, env=env, log_dir=logs)
    security = aiokafka_kwargs(settings)
    try:
        stack.start_broker()
        stack.settings = load_settings({**env, "PRESETTLE_KAFKA_BOOTSTRAP": stack.bootstrap})
        print(f"bench_worker: writing {args.events} events over {args.partitions} partitions to "
              f"{stack.settings.events_topic} on {stack.bootstrap}", file=sys.stderr, flush=True)
        fill_s = asyncio.run(prefill(stack.settings, args.events, security))
        print(f"bench_worker: written in {fill_s:.1f} s; starting the worker (logs in {logs})", file=sys.stderr,
              flush=True)
        result = asyncio.run(drain(stack, args.events, args.timeout, security))
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"events": args.events, "partitions": args.partitions,
            "records_per_partition": round(args.events / args.partitions), **result,
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4000, help="events written before the worker starts (4000)")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of every topic (8)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the drain (300)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.partitions < 1:
        parser.error("--events and --partitions must be at least 1")
    # A SIGTERM (e.g. `timeout`) must still stop the stack this run started: its children run in
    # sessions of their own and would outlive it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    result = run(args)
    print(orjson.dumps(result).decode(), flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
