"""The two-hop echo floor: the physical floor of PreSettle's design on a given broker.

A request crosses the broker twice (ingress → events topic → worker → reply topic → ingress),
so the floor is a two-hop aiokafka echo through the same broker, in separate processes:
this process produces to topic A at the rate, an echo process (``python -m loadtest.floor``)
consumes A and produces each record to topic B on the same partition, and this process
consumes B. Consumers have no group, the fetch wait is the service's, producers linger 0, acks 1,
and the topics have the service's partition count. Latency is measured from each record's due
time (no coordinated omission), as bench_e2e's HTTP figures are.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from typing import Any


async def _clients(bootstrap: str, fetch_wait_ms: int, security: dict[str, Any]) -> tuple[Any, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1, **security)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=fetch_wait_ms,
                                enable_auto_commit=False, **security)
    await producer.start()
    await consumer.start()
    return producer, consumer


async def _assign_at_end(consumer: Any, topic: str, partitions: int) -> None:
    from aiokafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:  # resolve the positions now, not on the first fetch
        await consumer.position(tp)


async def echo(bootstrap: str, source: str, target: str, partitions: int, fetch_wait_ms: int,
               security: dict[str, Any]) -> None:
    """The middle hop: every record of ``source`` to ``target``, same partition and key; runs until killed."""
    producer, consumer = await _clients(bootstrap, fetch_wait_ms, security)
    await _assign_at_end(consumer, source, partitions)
    print("ready", flush=True)
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for r in records:
                    await producer.send(target, r.value, key=r.key, partition=tp.partition)
    finally:
        await producer.stop()
        await consumer.stop()


async def _timed(producer: Any, consumer: Any, topic: str, partitions: int, rate: float, duration: float,
                 run: str) -> list[float]:
    """Send ``rate`` × ``duration`` records to ``topic`` (round robin over its partitions) at their due
    times and return each one's latency (ms, from its due time) when ``consumer`` receives it."""
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    total = int(rate * duration)
    done = asyncio.Event()

    async def receive() -> None:
        while len(latencies) < total:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    due = sent.pop(r.key, None)
                    if due is not None:
                        latencies.append((now - due) * 1000)
        done.set()

    receiver = asyncio.create_task(receive())
    start = time.perf_counter()
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = f"{run}-{n}".encode()
        sent[key] = due
        await producer.send(topic, b"x" * 600, key=key, partition=n % partitions)
    try:
        await asyncio.wait_for(done.wait(), 15)
    except TimeoutError:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    return latencies


async def _drop(bootstrap: str, topics: list[str], security: dict[str, Any]) -> None:
    """Delete the echo topics: leave nothing behind (on the embedded broker only deleting a topic frees its memory)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    try:
        await admin.start()
        await admin.delete_topics(topics)
    except Exception as exc:
        print(f"  could not delete the floor topics: {type(exc).__name__}", file=sys.stderr)
    finally:
        await admin.close()


async def one_hop(bootstrap: str, rate: float, duration: float, fetch_wait_ms: int,
                  security: dict[str, Any]) -> list[float]:
    """Latencies (ms) of one hop through the broker (produce → a consumer without a group receives),
    at ``rate`` for ``duration`` s, on a one-partition topic deleted afterwards."""
    from services.common.broker import ensure_topics

    run = uuid.uuid4().hex[:6]
    topic = f"presettle.bench-echo.{run}"
    await ensure_topics(bootstrap, {topic: 1}, timeout=10, security=security)
    producer = consumer = None
    try:
        producer, consumer = await _clients(bootstrap, fetch_wait_ms, security)
        await _assign_at_end(consumer, topic, 1)
        return await _timed(producer, consumer, topic, 1, rate, duration, run)
    finally:
        for client in (producer, consumer):
            if client is not None:
                await client.stop()
        await _drop(bootstrap, [topic], security)


async def two_hop(bootstrap: str, rate: float, duration: float, fetch_wait_ms: int, partitions: int,
                  security: dict[str, Any]) -> list[float]:
    """Latencies (ms) of a two-hop echo at ``rate`` for ``duration`` s; topics deleted afterwards."""
    from services.common.broker import ensure_topics

    run = uuid.uuid4().hex[:6]
    source, target = f"presettle.bench-floor2-a.{run}", f"presettle.bench-floor2-b.{run}"
    await ensure_topics(bootstrap, {source: partitions, target: partitions}, timeout=10, security=security)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest.floor", bootstrap, source, target, str(partitions), str(fetch_wait_ms),
        stdout=asyncio.subprocess.PIPE)
    producer = consumer = None
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"the echo process did not start (exit {proc.returncode})")
        producer, consumer = await _clients(bootstrap, fetch_wait_ms, security)
        await _assign_at_end(consumer, target, partitions)
        return await _timed(producer, consumer, source, partitions, rate, duration, run)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        for client in (producer, consumer):
            if client is not None:
                await client.stop()
        await _drop(bootstrap, [source, target], security)


def main(argv: list[str]) -> None:
    from services.common.kafka_security import aiokafka_kwargs
    from services.common.settings import load_settings

    bootstrap, source, target, partitions, fetch_wait_ms = argv
    security = aiokafka_kwargs(load_settings())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(echo(bootstrap, source, target, int(partitions), int(fetch_wait_ms), security))


if __name__ == "__main__":
    main(sys.argv[1:])
