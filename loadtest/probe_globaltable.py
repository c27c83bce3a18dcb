"""Does a faust GlobalTable give every worker every key, at start and live, on this broker?

    python -m loadtest.probe_globaltable [--transport kafka|presettle] [--keys 2000]

The question behind the provider-status design (docs/operations.md, *Provider status*): a
GlobalTable is the faust way to hold state every worker needs. This probe starts an embedded
broker (Tansu), worker A (a faust app whose agent writes each record of a one-partition input
topic into a GlobalTable), writes ``--keys`` records, starts worker B late, then writes 200 more,
and reports how many keys each worker's table holds (each worker writes ``len(table)`` to a file
every 0.2 s). ``--transport presettle`` runs the workers on the service's transport
(services/stream/transport.py: fetch wait, true changelog end offsets). Nothing is asserted;
the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

EXTRA = 200


def embedded_security() -> dict[str, Any]:
    """The probe always runs on an embedded broker of its own (plaintext on loopback): no TLS / SASL."""
    return {}


def worker_main() -> None:
    """One faust worker (run as ``python -m loadtest.probe_globaltable worker``)."""
    import faust

    out, name = os.environ["GT_OUT"], os.environ["GT_NAME"]
    app = faust.App("gt-probe", broker=os.environ["GT_BROKER"], store="memory://", web_enabled=False,
                    datadir=os.path.join(os.environ["GT_DIR"], f"data-{name}"), topic_partitions=1,
                    broker_session_timeout=6, broker_heartbeat_interval=1, broker_rebalance_timeout=6,
                    consumer_auto_offset_reset="earliest", producer_linger=0.0)
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic("gt-in", partitions=1, **raw)
    table = app.GlobalTable("providers", default=None, partitions=1, key_type=bytes, value_type=bytes)

    @app.agent(source)
    async def writer(stream: Any) -> None:
        async for key, value in stream.items():
            table[key] = value

    @app.timer(interval=0.2)
    async def report() -> None:
        with open(out, "a") as f:
            f.write(json.dumps({"t": time.time(), "n": len(table)}) + "\n")

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


def _count(path: str) -> int | None:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
        return json.loads(lines[-1])["n"] if lines else None
    except (FileNotFoundError, ValueError):
        return None


def _wait(path: str, n: int, timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = _count(path)
        if got is not None and got >= n:
            return round(time.monotonic() - t0, 2)
        time.sleep(0.1)
    return None


async def _produce(bootstrap: str, start: int, count: int, create: bool) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    if create:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **embedded_security())
        await admin.start()
        try:
            await admin.create_topics([NewTopic("gt-in", 1, 1)])
        finally:
            await admin.close()
        return
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, **embedded_security())
    await producer.start()
    try:
        for i in range(start, start + count):
            await producer.send("gt-in", b'{"status": "suspended"}', key=f"doctor/{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=("kafka", "presettle"), default="presettle")
    parser.add_argument("--keys", type=int, default=2000)
    args = parser.parse_args(argv)
    from services.common.broker import EmbeddedBroker, free_port

    broker = EmbeddedBroker(free_port()).start()
    tmp = tempfile.mkdtemp(prefix="gt-probe-")
    procs: list[subprocess.Popen[bytes]] = []

    def worker(name: str) -> str:
        out = os.path.join(tmp, f"{name}.jsonl")
        env = dict(os.environ, GT_BROKER=f"{args.transport}://{broker.bootstrap}", GT_NAME=name, GT_OUT=out,
                   GT_DIR=tmp, PRESETTLE_KAFKA_BOOTSTRAP=broker.bootstrap)
        log = open(os.path.join(tmp, f"{name}.log"), "wb")  # noqa: SIM115 - the child writes it
        procs.append(subprocess.Popen([sys.executable, "-m", "loadtest.probe_globaltable", "worker"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
        return out

    result: dict[str, Any] = {"transport": args.transport, "keys": args.keys, "then": EXTRA}
    try:
        asyncio.run(_produce(broker.bootstrap, 0, 0, create=True))
        a = worker("A")
        result["A_ready_s"] = _wait(a, 0, 90)
        asyncio.run(_produce(broker.bootstrap, 0, args.keys, create=False))
        result["A_has_keys_s"] = _wait(a, args.keys, 120)
        b = worker("B")  # the late worker
        result["B_late_has_keys_s"] = _wait(b, args.keys, 120)
        result["B_late_keys"] = _count(b)
        time.sleep(8)  # the rebalance settles
        asyncio.run(_produce(broker.bootstrap, args.keys, EXTRA, create=False))
        result["A_live_s"] = _wait(a, args.keys + EXTRA, 60)
        result["A_keys"] = _count(a)
        result["B_live_s"] = _wait(b, args.keys + EXTRA, 60)
        result["B_keys"] = _count(b)
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_avg"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main()
    else:
        raise SystemExit(main())
