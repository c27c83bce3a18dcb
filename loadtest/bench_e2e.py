"""End-to-end benchmark: POST /v1/events at a fixed rate, the broker floors, CPU per event.

    python -m loadtest.bench_e2e --rate 200 --duration 30 [--url URL] [--api-key KEY:INSTITUTION]
    python -m loadtest.bench_e2e --start-stack --rate 200 --duration 20 --repeat 5

Against a running service (``make run``), or a fresh stack of its own (``--start-stack``:
embedded broker unless PRESETTLE_KAFKA_BOOTSTRAP, free ports, stopped afterwards). The load
is open-loop: request i is due at ``start + i/rate`` and its latency is measured from that due
time, so a stalled server cannot hide its queueing (no coordinated omission). ``--repeat N``
runs N back-to-back phases on the same stack and reports each (the embedded broker's drift
shows there). Each phase reads the CPU time of the broker, the workers and the ingress from
/proc (found by their ports and command lines: loadtest/procstat.py) and reports CPU ms per
answered event, also net of their idle CPU (measured for ``--idle`` s before the load), with
the load average. Then, in the same run, it measures the floors at the same rate with the
service's fetch wait: a one-hop aiokafka produce → consume echo, and the two-hop echo
(producer → consumer → producer → consumer, separate processes, the service's partition
count: loadtest/floor.py) — the physical floor of a request through the worker.

The key and its institution: ``PRESETTLE_API_KEY=KEY:INSTITUTION`` (or ``--api-key``;
a plain development key knows its institution, see loadtest/apikey.py). A 401 or 403
from the service stops the run at once (exit 2) with what to set. The broker of the
floor phase is the stack's: ``PRESETTLE_KAFKA_BOOTSTRAP``, else the embedded broker on
``PRESETTLE_EMBEDDED_BROKER_PORT`` (services/common/settings.py). The HTTP results are
printed (stdout, one ``http:`` line) before the floor phase; if the broker cannot be
reached the run says so and exits 1 (``--floor-duration 0`` skips the floor). The last
line printed is one JSON object.

Exit codes: 0 done; 1 the floor phase failed (HTTP results printed); 2 the service
refused the key or institution, no service answered at --url, or a bad option.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson

from loadtest import procstat
from loadtest.apikey import ENV as KEY_ENV
from loadtest.apikey import KeyFormatError, parse_api_keys, rejection_message, retired_variables
from loadtest.floor import one_hop, two_hop

CST = timezone(timedelta(hours=8))


class Stop(Exception):
    """The run cannot go on (the service refused the key, or nothing listens at the URL)."""


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


async def drive_http(url: str, api_key: str, institution: str, rate: float, duration: float,
                     budget_ms: int | None, pool: Pool | None = None, traffic: Traffic | None = None,
                     label: str = "http") -> dict[str, Any]:
    """Drive the load; raises :class:`Stop` at the first 401/403 or when nothing listens at ``url``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = "/v1/events" + (f"?budget_ms={budget_ms}" if budget_ms else "")
    pool = pool or Pool(host, port)
    traffic = traffic or Traffic(institution, patients=5000)
    total = int(rate * duration)
    latencies: list[float] = []
    counts = {"sent": 0, "errors": 0, "timeouts": 0, "unavailable": 0, "alerts": 0}
    error_samples: list[str] = []
    fatal: list[str] = []

    async def one(n: int, due: float) -> None:
        body = orjson.dumps(traffic.event())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {api_key}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        counts["sent"] += 1
        try:
            status, payload = await asyncio.wait_for(pool.post(request), 30)
        except ConnectionRefusedError:
            fatal.append(f"bench_e2e: stopped: nothing answers at {url} (is the service running? `make run`; "
                         "or set --url / PRESETTLE_URL)")
            return
        except Exception as exc:
            counts["errors"] += 1
            if len(error_samples) < 3:
                error_samples.append(repr(exc))
            return
        if status in (401, 403):
            fatal.append(rejection_message(status, payload.decode(errors="replace"), api_key, institution,
                                           "bench_e2e"))
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
        if fatal:
            break
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
    if fatal:
        raise Stop(fatal[0])
    if error_samples:
        print(f"  http error samples: {error_samples}", file=sys.stderr)
    return {"latencies": latencies, **counts}


async def broker_floor(bootstrap: str, rate: float, duration: float, fetch_wait_ms: int) -> list[float]:
    """One hop through the broker: aiokafka produce → consumer (no group) receives (loadtest/floor.py)."""
    from services.common.kafka_security import aiokafka_kwargs
    from services.common.settings import load_settings

    security = aiokafka_kwargs(load_settings())  # PRESETTLE_KAFKA_TLS / _SASL_*, as the service
    return await one_hop(bootstrap, rate, duration, fetch_wait_ms, security)


def http_summary(http: dict[str, Any]) -> dict[str, Any]:
    lat = http["latencies"]
    return {
        "sent": http["sent"],
        "errors": http["errors"],
        "timeouts": http["timeouts"],
        "unavailable": http["unavailable"],
        "alerts": http["alerts"],
        "p50_ms": round(pct(lat, 50), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


def phase_summary(http: dict[str, Any], cpu_before: dict[str, float | None], cpu_after: dict[str, float | None],
                  seconds: float, idle_rate: dict[str, float | None] | None) -> dict[str, Any]:
    # Events that reached the broker (evaluated or timeout): an 'unavailable' answer never did,
    # so counting it would make the worker's and the broker's CPU per event look smaller.
    answered = len(http["latencies"]) - http["unavailable"]
    return {
        **http_summary(http),
        "cpu_ms_per_event": procstat.per_event_ms(cpu_before, cpu_after, answered),
        "cpu_ms_per_event_net": (procstat.per_event_ms(cpu_before, cpu_after, answered, idle_rate, seconds)
                                 if idle_rate is not None else None),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(args.url)
    pool = Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    traffic = Traffic(args.institution, patients=5000)
    warm: dict[str, Any] = {"latencies": [], "errors": 0}
    print(f"bench_e2e: key {args.key[:4]}… of institution {args.institution} ({KEY_ENV}=KEY:INSTITUTION)",
          file=sys.stderr, flush=True)
    pids = args.pids or procstat.stack_pids(parts.port or 80, args.bootstrap)
    print(f"bench_e2e: processes {pids}", file=sys.stderr, flush=True)
    idle_rate: dict[str, float | None] | None = None
    if args.idle > 0:  # before any load: right after a phase the stack is still working off its backlog
        before = procstat.cpu_of(pids)
        await asyncio.sleep(args.idle)
        after = procstat.cpu_of(pids)
        idle_rate = procstat.rate(before, after, args.idle)
    if args.warmup > 0:
        # Opens the connection pool and wakes every partition; reported apart, not hidden.
        print(f"bench_e2e: warm-up {args.rate} req/s for {args.warmup} s (not counted)", file=sys.stderr, flush=True)
        warm = await drive_http(args.url, args.key, args.institution, args.rate, args.warmup, args.budget_ms,
                                pool, traffic, label="warm-up")
    phases: list[dict[str, Any]] = []
    for index in range(args.repeat):
        label = "http" if args.repeat == 1 else f"phase {index + 1}/{args.repeat}"
        print(f"bench_e2e: {label}: {args.rate} req/s for {args.duration} s against {args.url}", file=sys.stderr,
              flush=True)
        cpu_before, t0 = procstat.cpu_of(pids), time.perf_counter()
        http = await drive_http(args.url, args.key, args.institution, args.rate, args.duration, args.budget_ms,
                                pool, traffic, label=label)
        summary = phase_summary(http, cpu_before, procstat.cpu_of(pids), time.perf_counter() - t0, idle_rate)
        phases.append(summary)
        if args.repeat > 1:
            print(f"phase {index + 1}: " + orjson.dumps(summary).decode(), flush=True)
    for conn in pool.idle:
        conn.writer.close()
    first = phases[0]
    result: dict[str, Any] = {
        "rate": args.rate,
        "duration_s": args.duration,
        **{k: v for k, v in first.items() if k not in ("cpu_ms_per_event", "cpu_ms_per_event_net", "load_avg")},
        "warmup_s": args.warmup,
        "warmup_p99_ms": round(pct(warm["latencies"], 99), 2) if warm["latencies"] else None,
        "warmup_errors": warm["errors"],
    }
    # The HTTP figures first: a floor phase that fails must not lose them.
    print("http: " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    result.update(cpu_ms_per_event=first["cpu_ms_per_event"], cpu_ms_per_event_net=first["cpu_ms_per_event_net"],
                  idle_cpu_ms_per_s={k: None if v is None else round(v * 1000, 2) for k, v in (idle_rate or {}).items()},
                  load_avg=first["load_avg"], processes={k: len(v) for k, v in pids.items()})
    if args.repeat > 1:
        result["phases"] = phases
        result["last_to_first_p99"] = round(phases[-1]["p99_ms"] / phases[0]["p99_ms"], 2) if phases[0]["p99_ms"] else None
    floor_duration = min(args.duration, args.floor_duration)
    result.update(floor_p50_ms=None, floor_p99_ms=None, floor2_p50_ms=None, floor2_p99_ms=None)
    if floor_duration <= 0:
        return result
    from services.common.kafka_security import aiokafka_kwargs
    from services.common.settings import load_settings

    security = aiokafka_kwargs(load_settings())  # PRESETTLE_KAFKA_TLS / _SASL_*, as the service
    print(f"bench_e2e: broker floors at {args.rate} msg/s for {floor_duration} s each on {args.bootstrap}",
          file=sys.stderr, flush=True)
    try:
        floor = await broker_floor(args.bootstrap, args.rate, floor_duration, args.fetch_wait_ms)
        result.update(floor_p50_ms=round(pct(floor, 50), 2), floor_p99_ms=round(pct(floor, 99), 2))
        floor2 = await two_hop(args.bootstrap, args.rate, floor_duration, args.fetch_wait_ms, args.floor_partitions,
                               security)
    except Exception as exc:  # no broker there, or it refused the echo topic
        result["floor_error"] = f"{type(exc).__name__}: {exc}"[:300]
        print(f"bench_e2e: floor phase failed: cannot use the broker at {args.bootstrap} ({result['floor_error']}); "
              "the HTTP results above stand. Set PRESETTLE_KAFKA_BOOTSTRAP or PRESETTLE_EMBEDDED_BROKER_PORT "
              "as for the stack, --bootstrap, or --floor-duration 0 to skip the floor", file=sys.stderr, flush=True)
        return result
    result.update(floor2_p50_ms=round(pct(floor2, 50), 2), floor2_p99_ms=round(pct(floor2, 99), 2),
                  floor2_lost=int(args.rate * floor_duration) - len(floor2))
    if result["floor2_p50_ms"] and first["p50_ms"] == first["p50_ms"]:
        result["p50_over_floor2"] = round(first["p50_ms"] / result["floor2_p50_ms"], 2)
    return result


def build_parser(defaults: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="requests per second (default 200)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of measured load (default 30)")
    parser.add_argument("--url", default=os.environ.get("PRESETTLE_URL", "http://127.0.0.1:8000"),
                        help="the service (default $PRESETTLE_URL or http://127.0.0.1:8000)")
    parser.add_argument("--api-key", default=os.environ.get(KEY_ENV, "dev-key-h1"), metavar="KEY[:INSTITUTION]",
                        help=f"X-API-Key and the institution it belongs to (default ${KEY_ENV} or dev-key-h1; "
                        "a plain key: dev-key-h1 → H1, dev-key-h2 → H2, any other → H1)")
    parser.add_argument("--bootstrap", default=defaults.bootstrap,
                        help="broker for the floor measurement (default: the stack's, from PRESETTLE_KAFKA_BOOTSTRAP "
                        f"or PRESETTLE_EMBEDDED_BROKER_PORT: {defaults.bootstrap})")
    parser.add_argument("--fetch-wait-ms", type=int, default=defaults.fetch_max_wait_ms,
                        help="consumer fetch wait of the floor phase (default PRESETTLE_FETCH_MAX_WAIT_MS: "
                        f"{defaults.fetch_max_wait_ms})")
    parser.add_argument("--floor-duration", type=float, default=10,
                        help="seconds of each broker floor phase (one hop, two hops), at most --duration "
                        "(default 10; 0 = skip)")
    parser.add_argument("--floor-partitions", type=int, default=defaults.partitions,
                        help="partitions of the two-hop floor's topics (default PRESETTLE_PARTITIONS: "
                        f"{defaults.partitions})")
    parser.add_argument("--repeat", type=int, default=1,
                        help="back-to-back measured phases on the same stack, each reported (default 1)")
    parser.add_argument("--idle", type=float, default=3,
                        help="seconds the stack's idle CPU is measured before the load, taken out of the "
                        "*_net figures (default 3; 0 = none)")
    parser.add_argument("--start-stack", action="store_true",
                        help="start a fresh stack of its own (free ports, PRESETTLE_* as set), stop it afterwards; "
                        "--url and --bootstrap are then the new stack's")
    parser.add_argument("--warmup", type=float, default=2,
                        help="seconds of load before the measured run, reported apart (default 2; 0 = none)")
    parser.add_argument("--budget-ms", type=int, default=None,
                        help="?budget_ms= on every request (default: the service's PRESETTLE_BUDGET_MS)")
    return parser


def start_own_stack() -> Any:
    """A fresh stack on free ports with a unique topic prefix (PRESETTLE_* from the environment otherwise)."""
    from pathlib import Path

    from services.common.broker import free_port
    from services.common.settings import load_settings
    from services.stack import Stack

    env = dict(os.environ)
    env.update(PRESETTLE_HTTP_PORT=str(free_port()), PRESETTLE_WORKER_METRICS_PORT=str(free_port()),
               PRESETTLE_TOPIC_PREFIX=f"bench{uuid.uuid4().hex[:6]}", PRESETTLE_INSTANCE_ID=f"bench-{os.getpid()}")
    if not env.get("PRESETTLE_KAFKA_BOOTSTRAP"):
        env["PRESETTLE_EMBEDDED_BROKER_PORT"] = str(free_port())
    # A data directory of its own (removed by stop_own_stack): the workers' RocksDB stores and the
    # sink's SQLite file of `make run` or of an earlier run would be re-seeded into this stack's empty
    # changelog, or collide with a stack running from the same directory.
    env.setdefault("PRESETTLE_DATA_DIR", tempfile.mkdtemp(prefix="presettle-bench-e2e-"))
    logs = Path(".artifacts") / "logs" / f"bench-{time.strftime('%Y%m%dT%H%M%S')}"
    stack = Stack(load_settings(env), env=env, log_dir=logs)
    stack.own_data_dir = env["PRESETTLE_DATA_DIR"] if "PRESETTLE_DATA_DIR" not in os.environ else None
    print(f"bench_e2e: starting a fresh stack (logs in {logs})", file=sys.stderr, flush=True)
    try:
        stack.start()
        took = stack.wait_healthy(120)
    except BaseException:
        stop_own_stack(stack)
        raise
    print(f"bench_e2e: stack ready in {took:.1f} s at {stack.url}, broker {stack.bootstrap}", file=sys.stderr,
          flush=True)
    return stack


def stop_own_stack(stack: Any) -> None:
    try:
        stack.stop()
    finally:
        if stack.own_data_dir:
            shutil.rmtree(stack.own_data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from services.common.settings import SettingsError, load_settings

    try:
        defaults = load_settings()  # the same PRESETTLE_* the stack reads: broker, fetch wait
    except SettingsError as exc:
        print(f"bench_e2e: configuration error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser(defaults)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0 or args.floor_duration < 0 or args.idle < 0:
        parser.error("--rate and --duration must be positive, --warmup, --idle and --floor-duration not negative")
    if args.repeat < 1 or args.floor_partitions < 1:
        parser.error("--repeat and --floor-partitions must be at least 1")
    try:
        keys = parse_api_keys(args.api_key, "--api-key" if argv and "--api-key" in argv else KEY_ENV)
    except KeyFormatError as exc:
        parser.error(str(exc))
    if len(keys) > 1:
        parser.error(f"bench_e2e drives one institution: give one KEY:INSTITUTION, not {len(keys)}")
    (args.key, args.institution), = keys
    # aiokafka logs every failed connection attempt; the floor phase reports the failure once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    for warning in retired_variables(dict(os.environ)):
        print(f"bench_e2e: {warning}", file=sys.stderr)
    # A SIGTERM (e.g. `timeout`) must still stop the stack this run started: its children run in
    # sessions of their own and would outlive it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args.pids = None
    stack = None
    if args.start_stack:
        try:
            stack = start_own_stack()
        except Exception as exc:
            print(f"bench_e2e: the stack did not start: {exc}", file=sys.stderr)
            return 2
        args.url, args.bootstrap = stack.url, stack.bootstrap
        args.pids = {"broker": [stack.broker.proc.pid] if stack.broker and stack.broker.proc else [],
                     "worker": [p.pid for p in stack.workers.values()],
                     "ingress": [stack.ingress.pid] if stack.ingress else [],
                     "sink": [stack.sink.pid] if stack.sink else []}
    try:
        result = asyncio.run(main_async(args))
    except Stop as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 2
    finally:
        if stack is not None:
            stop_own_stack(stack)
    print(orjson.dumps(result).decode(), flush=True)
    return 1 if "floor_error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
