"""How many decisions per second the decision-log sink stores, into SQLite and into PostgreSQL.

    python -m loadtest.bench_sink [--rate 500] [--duration 30] [--database sqlite|postgresql|URL]

Starts an embedded broker (unless PRESETTLE_KAFKA_BOOTSTRAP), creates the service's topics under a
fresh prefix, starts the real sink process (``python -m services.decisionlog.sink``) against the
database — ``sqlite``: a new file in a temporary directory; ``postgresql``: a throwaway cluster of
Debian's PostgreSQL (tests/decisionlog/pg.py); or a ``postgresql://`` URL — then produces synthetic
audit records (3 alerts in 10 decisions, a third of those at settlement scenes, so cases open too)
at ``--rate`` per second, open loop, for ``--duration`` seconds, and waits for the sink to drain.
From the database it reports the stored rate over the run, the drain time after the last send,
and the lag of each decision (``stored_at − decided_at``, the producer stamps ``decided_at`` at
send) as p50/p99/max; from /proc the sink's CPU time per stored decision (what it needs of a core
to keep up, whatever the machine's load). The last stdout line is one JSON object. A benchmark: nothing is asserted;
report the load average beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from services.common.broker import EmbeddedBroker, ensure_topics, free_port, service_topics, topic_configs
from services.common.kafka_security import aiokafka_kwargs
from services.common.settings import load_settings
from services.decisionlog.store import Store


def record(n: int, prefix: str) -> dict[str, Any]:
    decision_id = f"d-{prefix}-{n:08d}"
    alerts = []
    if n % 10 < 3:
        alerts = [{"rule_id": "R03", "rule_version": "1.0.0", "message_zh": "诊断与性别不符", "message_en": "m",
                   "line_ids": [], "amount": 12.5, "evidence": [{"kind": "kb", "table": "diagnoses", "code": "N40"}],
                   "region": "default", "alert_id": f"{decision_id}.R03.1", "severity": "C"}]
    return {
        "decision_id": decision_id, "event_id": f"e{n}", "institution_id": f"H{n % 7 + 1}",
        "patient_id": f"P{n % 5000:05d}", "scene": (6, 2, 8)[n % 3], "occurred_at": datetime.now(UTC).isoformat(),
        "engine_status": "evaluated", "replayed": False, "alerts": alerts, "unchecked_lines": [],
        "rulebase_revision": "bench", "shadow_alerts": [], "engine_ms": 1.0,
        "decided_at": datetime.now(UTC).isoformat(), "worker": "bench", "request_id": None,
        "institution_region": "330100", "institution_level": 2, "department": "内科", "doctor_id": f"D{n % 40}",
    }


async def send_one(bootstrap: str, topic: str, rec: dict[str, Any], security: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **security)
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(rec), key=rec["patient_id"].encode())
    finally:
        await producer.stop()


async def produce(bootstrap: str, topic: str, rate: float, duration: float, prefix: str,
                  security: dict[str, Any]) -> tuple[int, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **security)
    await producer.start()
    sent = 0
    t0 = time.monotonic()
    try:
        while True:
            due = t0 + sent / rate
            now = time.monotonic()
            if now - t0 >= duration:
                break
            if due > now:
                await asyncio.sleep(due - now)
            rec = record(sent, prefix)
            await producer.send(topic, orjson.dumps(rec), key=rec["patient_id"].encode())
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent, time.monotonic() - t0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def seconds(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = None
    tmp = Path(tempfile.mkdtemp(prefix="presettle-bench-sink-"))
    if args.database == "sqlite":
        url = f"sqlite:///{tmp / 'decisionlog.sqlite3'}"
    elif args.database == "postgresql":
        from tests.decisionlog.pg import Cluster

        cluster = Cluster().start()
        url = cluster.new_database()
    else:
        url = args.database
    broker = None
    bootstrap = os.environ.get("PRESETTLE_KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = EmbeddedBroker(free_port()).start()
        bootstrap = broker.bootstrap
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    # The Kafka connection settings (bootstrap, TLS, SASL) carry over; everything else is the bench's own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_") or k.startswith("PRESETTLE_KAFKA_")}
    env.update(PRESETTLE_KAFKA_BOOTSTRAP=bootstrap, PRESETTLE_TOPIC_PREFIX=prefix, PRESETTLE_DATABASE_URL=url,
               PRESETTLE_SINK_METRICS_PORT="0", PRESETTLE_PARTITIONS=str(args.partitions), PRESETTLE_ENV="test",
               PRESETTLE_DATA_DIR=str(tmp), PRESETTLE_LOG_FORMAT="text")
    settings = load_settings(env)
    security = aiokafka_kwargs(settings)  # TLS / SASL from the PRESETTLE_KAFKA_* settings, as the service
    asyncio.run(ensure_topics(bootstrap, service_topics(settings), configs=topic_configs(settings), security=security))
    sink = subprocess.Popen([sys.executable, "-m", "services.decisionlog.sink"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "sink.log", "wb"))  # noqa: SIM115
    store = Store.open(url)
    try:
        # Warm-up: one record, and wait until it is stored — the sink has started, joined its group and
        # holds its partitions, so the figures below measure the steady state, not the start-up.
        probe = record(0, prefix + "-probe")
        asyncio.run(send_one(bootstrap, settings.decisions_topic, probe, security))
        ready = time.monotonic() + args.drain_timeout
        while store.decision(probe["decision_id"]) is None:
            if time.monotonic() > ready or sink.poll() is not None:
                raise SystemExit(f"the sink stored nothing (see {tmp / 'sink.log'})")
            time.sleep(0.2)
        sent, took = asyncio.run(produce(bootstrap, settings.decisions_topic, args.rate, args.duration, prefix,
                                         security))
        send_end = time.monotonic()
        deadline = send_end + args.drain_timeout
        stored = 0
        while time.monotonic() < deadline:
            stored = store.counts()["decisions"] - 1  # the probe
            if stored >= sent:
                break
            time.sleep(0.2)
        drain = time.monotonic() - send_end
        rows = store.rows("SELECT decided_at, stored_at FROM decisions WHERE decision_id <> ?", [probe["decision_id"]])
        lags = [seconds(r["stored_at"]) - seconds(r["decided_at"]) for r in rows]
        first = min((seconds(r["decided_at"]) for r in rows), default=0.0)
        last = max((seconds(r["stored_at"]) for r in rows), default=0.0)
        counts = store.counts()
        cpu = cpu_seconds(sink.pid)
    finally:
        sink.terminate()
        try:
            sink.wait(10)
        except subprocess.TimeoutExpired:
            sink.kill()
        store.close()
        if broker:
            broker.stop()
        if cluster:
            cluster.stop()
    return {
        "database": args.database if args.database in ("sqlite", "postgresql") else "url",
        "offered_rate": args.rate, "duration_s": args.duration, "sent": sent, "send_s": round(took, 2),
        "stored": stored, "cases": counts["cases"] - 1, "alerts": counts["alerts"] - 1,
        "stored_per_s": round(stored / (last - first), 1) if last > first else 0.0,
        "drain_s": round(drain, 2), "lag_p50_s": round(percentile(lags, 0.5), 3),
        "lag_p99_s": round(percentile(lags, 0.99), 3), "lag_max_s": round(max(lags, default=0.0), 3),
        # CPU the sink used per stored decision (joining the group included): what the box must give it
        # to keep up, independent of how loaded the box is now.
        "sink_cpu_s": round(cpu, 2) if cpu is not None else None,
        "sink_cpu_ms_per_decision": round(cpu * 1000 / stored, 3) if cpu is not None and stored else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="audit records per second offered (500)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending (30)")
    parser.add_argument("--database", default="sqlite", help="sqlite | postgresql | a postgresql:// URL")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the sink after sending")
    args = parser.parse_args(argv)
    result = run(args)
    print(f"{result['database']}: offered {args.rate:.0f}/s for {args.duration:.0f} s, stored {result['stored']}"
          f"/{result['sent']} at {result['stored_per_s']}/s, drained {result['drain_s']} s after the last send, lag "
          f"p50 {result['lag_p50_s']} s p99 {result['lag_p99_s']} s, sink CPU {result['sink_cpu_ms_per_decision']} ms "
          f"per decision (load average {result['load_avg_1m']})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
