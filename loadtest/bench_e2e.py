"""End-to-end benchmark: POST /v1/events at a fixed rate, and the bare broker floor.

    python -m loadtest.bench_e2e --rate 200 --duration 30 [--url URL] [--api-key KEY]

Against a running service (``make run``). The load is open-loop: request i is
due at ``start + i/rate`` and its latency is measured from that due time, so a
stalled server cannot hide its queueing (no coordinated omission). Then, in the
same run, it measures the floor: an aiokafka produce → consume echo through the
same broker at the same rate, one hop, with the same fetch wait the service uses.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson

CST = timezone(timedelta(hours=8))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# -- a minimal keep-alive HTTP/1.1 client (low overhead, honest latencies) ------
class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body


class Pool:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Connection] = []

    async def post(self, request: bytes) -> tuple[int, bytes]:
        while self.idle:
            # A reused connection the server closed while idle (keep-alive
            # timeout) fails before any answer: retry on a fresh one, as
            # every HTTP client does.
            conn = self.idle.pop()
            try:
                result = await conn.post(request)
            except (ConnectionError, asyncio.IncompleteReadError):
                conn.writer.close()
                continue
            except BaseException:  # any other failure (a cancelled wait too): the connection is unusable
                conn.writer.close()
                raise
            self.idle.append(conn)
            return result
        conn = Connection(*await asyncio.open_connection(self.host, self.port))
        try:
            result = await conn.post(request)
        except BaseException:
            conn.writer.close()
            raise
        self.idle.append(conn)
        return result


# -- synthetic traffic ---------------------------------------------------------
DRUGS = [("XA02BCA211A001010104444", "奥美拉唑肠溶胶囊", 14), ("XC08CAA011A001010100000", "苯磺酸氨氯地平片", 30),
         ("XA10BAA011A001010100000", "盐酸二甲双胍片", 30), ("XC10AAA051A001010100000", "阿托伐他汀钙片", 30)]


class Traffic:
    """A population of outpatients at institution ``institution``; ~1 in 8 events repeats a drug early."""

    def __init__(self, institution: str, patients: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.institution = institution
        self.run = uuid.uuid4().hex[:8]
        self.patients = [f"B{self.run}{i:05d}" for i in range(patients)]
        self.clock = datetime(2026, 1, 5, 8, 0, tzinfo=CST)
        self.count = 0

    def event(self) -> dict[str, Any]:
        rng = self.rng
        self.count += 1
        n = self.count
        self.clock += timedelta(seconds=30)
        code, name, days = rng.choice(DRUGS)
        gender = rng.choice("MF")
        return {
            "event_id": f"bench-{self.run}-{n}",
            "scene": rng.choice((2, 2, 6, 7, 10)),
            "occurred_at": self.clock.isoformat(),
            "institution": {"id": self.institution, "level": 3, "region": "330100"},
            "patient": {"id": rng.choice(self.patients), "gender": gender, "birth_date": "1960-05-01",
                        "insurance_type": "310", "region": "330100"},
            "encounter": {"id": f"E{self.run}{n}", "type": "outpatient", "med_type": "11"},
            "diagnoses": [{"code": "I10", "name": "特发性(原发性)高血压", "main": True}],
            "items": [{"line_id": "1", "code": code, "name": name, "kind": "drug", "quantity": days,
                       "unit": "片", "unit_price": 0.5, "amount": round(days * 0.5, 2), "days_supply": days}],
        }


async def drive_http(url: str, api_key: str, rate: float, duration: float, budget_ms: int | None,
                     pool: Pool | None = None, traffic: Traffic | None = None, label: str = "http") -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = "/v1/events" + (f"?budget_ms={budget_ms}" if budget_ms else "")
    pool = pool or Pool(host, port)
    traffic = traffic or Traffic(os.environ.get("PRESETTLE_BENCH_INSTITUTION", "H1"), patients=5000)
    total = int(rate * duration)
    latencies: list[float] = []
    counts = {"sent": 0, "errors": 0, "timeouts": 0, "unavailable": 0, "alerts": 0}
    error_samples: list[str] = []

    async def one(n: int, due: float) -> None:
        body = orjson.dumps(traffic.event())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {api_key}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        counts["sent"] += 1
        try:
            status, payload = await asyncio.wait_for(pool.post(request), 30)
        except Exception as exc:
            counts["errors"] += 1
            if len(error_samples) < 3:
                error_samples.append(repr(exc))
            return
        if status != 200:
            counts["errors"] += 1
            if len(error_samples) < 3:
                error_samples.append(f"{status} {payload[:200]!r}")
            return
        latencies.append((time.perf_counter() - due) * 1000)  # answered requests only
        answer = orjson.loads(payload)
        if answer["engine_status"] == "timeout":
            counts["timeouts"] += 1
        elif answer["engine_status"] == "unavailable":
            counts["unavailable"] += 1
        counts["alerts"] += len(answer["alerts"])

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.05
    next_report = start + 5
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
        if time.perf_counter() >= next_report:
            next_report += 5
            recent = latencies[-int(rate * 5):]
            print(f"  {label}: {n}/{total} sent, p50 {pct(recent, 50):.1f} ms, p99 {pct(recent, 99):.1f} ms, "
                  f"errors {counts['errors']}, timeouts {counts['timeouts']}", file=sys.stderr, flush=True)
    await asyncio.gather(*tasks)
    if error_samples:
        print(f"  http error samples: {error_samples}", file=sys.stderr)
    return {"latencies": latencies, **counts}


async def broker_floor(bootstrap: str, rate: float, duration: float, fetch_wait_ms: int) -> list[float]:
    """One hop through the broker: aiokafka produce → consumer (no group) receives."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from services.common.broker import ensure_topics

    topic = f"presettle.bench-echo.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, {topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=fetch_wait_ms,
                                enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
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
                    if r.key in sent:
                        latencies.append((now - sent.pop(r.key)) * 1000)
        done.set()

    receiver = asyncio.create_task(receive())
    start = time.perf_counter()
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = str(n).encode()
        sent[key] = start + n / rate  # from the due time, like the HTTP figures
        await producer.send(topic, b"x" * 600, key=key)
    try:
        await asyncio.wait_for(done.wait(), 15)
    except asyncio.TimeoutError:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    await producer.stop()
    await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:  # leave nothing behind on a real cluster
        await admin.start()
        await admin.delete_topics([topic])
    except Exception as exc:
        print(f"  could not delete {topic}: {type(exc).__name__}", file=sys.stderr)
    finally:
        await admin.close()
    return latencies


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(args.url)
    pool = Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    traffic = Traffic(os.environ.get("PRESETTLE_BENCH_INSTITUTION", "H1"), patients=5000)
    warm: dict[str, Any] = {"latencies": [], "errors": 0}
    if args.warmup > 0:
        # Opens the connection pool and wakes every partition; reported apart, not hidden.
        print(f"bench_e2e: warm-up {args.rate} req/s for {args.warmup} s (not counted)", file=sys.stderr, flush=True)
        warm = await drive_http(args.url, args.api_key, args.rate, args.warmup, args.budget_ms, pool, traffic,
                                label="warm-up")
    print(f"bench_e2e: {args.rate} req/s for {args.duration} s against {args.url}", file=sys.stderr, flush=True)
    http = await drive_http(args.url, args.api_key, args.rate, args.duration, args.budget_ms, pool, traffic)
    for conn in pool.idle:
        conn.writer.close()
    floor_duration = min(args.duration, args.floor_duration)
    print(f"bench_e2e: broker floor at {args.rate} msg/s for {floor_duration} s on {args.bootstrap}",
          file=sys.stderr, flush=True)
    floor = await broker_floor(args.bootstrap, args.rate, floor_duration, args.fetch_wait_ms)
    lat = http["latencies"]
    return {
        "rate": args.rate,
        "duration_s": args.duration,
        "sent": http["sent"],
        "errors": http["errors"],
        "timeouts": http["timeouts"],
        "unavailable": http["unavailable"],
        "alerts": http["alerts"],
        "p50_ms": round(pct(lat, 50), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
        "floor_p50_ms": round(pct(floor, 50), 2),
        "floor_p99_ms": round(pct(floor, 99), 2),
        "warmup_s": args.warmup,
        "warmup_p99_ms": round(pct(warm["latencies"], 99), 2) if warm["latencies"] else None,
        "warmup_errors": warm["errors"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200, help="requests per second (default 200)")
    parser.add_argument("--duration", type=float, default=30, help="seconds (default 30)")
    parser.add_argument("--url", default=os.environ.get("PRESETTLE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("PRESETTLE_API_KEY", "dev-key-h1"))
    parser.add_argument("--bootstrap", default=os.environ.get("PRESETTLE_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
                        help="broker for the floor measurement")
    parser.add_argument("--fetch-wait-ms", type=int, default=int(os.environ.get("PRESETTLE_FETCH_MAX_WAIT_MS", "5")))
    parser.add_argument("--floor-duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2,
                        help="seconds of load before the measured run, reported apart (default 2; 0 = none)")
    parser.add_argument("--budget-ms", type=int, default=None, help="?budget_ms= on every request")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rate and --duration must be positive, --warmup not negative")
    result = asyncio.run(main_async(args))
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
