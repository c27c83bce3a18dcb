"""Provider status broadcast: how long a late worker takes to read every timeline, and how soon a
record written by the ingress reaches a following worker.

    python -m loadtest.bench_provider_feed --records 100000 [--bootstrap HOST:PORT]

Without ``--bootstrap`` it starts an embedded broker (Tansu) on a free port. It writes
``--records`` doctor-status records to the provider-status topic (a fresh topic prefix), then
times :meth:`ProviderFeed.start` of a new feed (what a worker does before its first event), and
then, 20 times, the time from :meth:`ProviderFeed.publish` (acks=all, as the admin routes write)
to the following feed's position passing the record. A benchmark: nothing is asserted. The last
line is one JSON object ``{"records", "late_start_s", "providers", "publish_to_seen_ms_p50",
"publish_to_seen_ms_max", "load_avg"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

import orjson


def _record(i: int) -> dict[str, Any]:
    return {"subject": "doctor", "doctor_id": f"D{i:07d}", "status": "suspended", "effective_from": "2026-03-01",
            "updated_at": "2026-02-28T09:00:00+08:00", "reason": "记分达到暂停医保支付资格"}


async def run(bootstrap: str, records: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from services.common.kafka_security import aiokafka_kwargs
    from services.common.provider_feed import ProviderFeed
    from services.common.settings import load_settings
    from services.contracts.provider_status import record_key

    # The environment's Kafka security settings (TLS / SASL) apply to a --bootstrap broker.
    settings = load_settings({**os.environ, "PRESETTLE_KAFKA_BOOTSTRAP": bootstrap,
                              "PRESETTLE_TOPIC_PREFIX": f"bench-{uuid.uuid4().hex[:8]}"})
    writer = ProviderFeed(settings, "bench-writer")
    await writer.start(follow=False)  # creates the topic
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, **aiokafka_kwargs(settings))
    await producer.start()
    try:
        for i in range(records):
            wire = _record(i)
            await producer.send(settings.provider_status_topic, orjson.dumps(wire), key=record_key(wire).encode(),
                                partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    t0 = time.monotonic()
    late = ProviderFeed(settings, "bench-late")
    await late.start()
    start_s = time.monotonic() - t0
    latencies = []
    try:
        for i in range(20):
            t = time.monotonic()
            offset = await writer.publish(_record(records + i), 10.0)
            while late.position <= offset:
                await asyncio.sleep(0.001)
            latencies.append((time.monotonic() - t) * 1000)
    finally:
        await late.stop()
        await writer.stop()
    latencies.sort()
    return {"records": records, "late_start_s": round(start_s, 2), "providers": late.providers.counts(),
            "publish_to_seen_ms_p50": round(latencies[len(latencies) // 2], 1),
            "publish_to_seen_ms_max": round(latencies[-1], 1), "load_avg": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: an embedded one)")
    args = parser.parse_args(argv)
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from services.common.broker import EmbeddedBroker, free_port

        broker = EmbeddedBroker(free_port()).start()
        bootstrap = broker.bootstrap
    try:
        print(json.dumps(asyncio.run(run(bootstrap, args.records)), ensure_ascii=False))
    finally:
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
