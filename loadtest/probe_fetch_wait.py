"""What a consumer's fetch wait costs on the embedded broker: idle broker CPU and hop latency.

    python -m loadtest.probe_fetch_wait [--waits 5,50,200] [--samples 30]

Starts an embedded broker (Tansu) of its own, one 8-partition topic, and for each fetch wait
one consumer tailing it: the broker's CPU per second while nothing is produced (the cost of the
consumer's polling alone), then the produce → consume latency of ``--samples`` single records.
Tansu holds every fetch until its wait expires, even when records arrive earlier (Apache Kafka
answers as soon as data arrives), so on Tansu the wait is both the latency floor of a hop and
the idle polling cost. Measured here (2 cores): wait 5 ms → 127 ms/s of broker CPU, p50 3.3 ms;
50 ms → 23 ms/s, p50 12.8 ms; 200 ms → 13 ms/s, p50 88 ms. The last line is one JSON object.
A probe: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any


def embedded_security() -> dict[str, Any]:
    """The probe always runs on an embedded broker of its own (plaintext on loopback): no TLS / SASL."""
    return {}


def _cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def probe(waits: list[int], samples: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from services.common.broker import EmbeddedBroker, free_port

    broker = EmbeddedBroker(free_port()).start()
    assert broker.proc is not None
    pid, bootstrap = broker.proc.pid, broker.bootstrap
    out: list[dict[str, Any]] = []
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **embedded_security())
        await admin.start()
        try:
            await admin.create_topics([NewTopic("probe", 8, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, **embedded_security())
        await producer.start()
        try:
            for wait in waits:
                consumer = AIOKafkaConsumer("probe", bootstrap_servers=bootstrap, group_id=None,
                                            fetch_max_wait_ms=wait, auto_offset_reset="latest", **embedded_security())
                await consumer.start()
                try:
                    await asyncio.sleep(1.0)
                    c0, t0 = _cpu_ms(pid), time.monotonic()
                    await asyncio.sleep(3.0)
                    idle = (_cpu_ms(pid) - c0) / (time.monotonic() - t0)
                    latencies = []
                    for i in range(samples):
                        t = time.perf_counter()
                        await (await producer.send("probe", b"x", partition=i % 8))
                        while not await consumer.getmany(timeout_ms=2000):
                            pass
                        latencies.append((time.perf_counter() - t) * 1000)
                        await asyncio.sleep(0.013)  # off the fetch cycle
                    latencies.sort()
                    row = {"fetch_wait_ms": wait, "idle_broker_cpu_ms_per_s": round(idle, 1),
                           "hop_p50_ms": round(latencies[len(latencies) // 2], 1), "hop_max_ms": round(latencies[-1], 1)}
                    print(f"probe_fetch_wait: {row}", file=sys.stderr, flush=True)
                    out.append(row)
                finally:
                    await consumer.stop()
        finally:
            await producer.stop()
    finally:
        broker.stop()
    return {"waits": out, "load_avg": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", default="5,50,200", help="fetch waits to try, ms, comma-separated")
    parser.add_argument("--samples", type=int, default=30, help="records timed per wait")
    args = parser.parse_args(argv)
    try:
        waits = [int(w) for w in args.waits.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--waits: comma-separated integers, not {args.waits!r}")
    if not waits or any(w < 1 for w in waits) or args.samples < 1:
        parser.error("--waits must name at least one wait ≥ 1 ms and --samples must be ≥ 1")
    print(json.dumps(asyncio.run(probe(waits, args.samples))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
