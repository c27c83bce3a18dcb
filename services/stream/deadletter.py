"""The dead-letter topic: records the worker cannot process, and their replay.

The worker writes a record it cannot process — malformed (not JSON, missing
fields), ``wrong-key`` (the Kafka key is not the record's patient id), an
``unknown-kind``, or an ``engine-error`` — to ``<prefix>.deadletter``, unchanged
(key, value, original headers), with these headers added:

===========================  ===========================================
``dlq_reason``                malformed | wrong-key | unknown-kind | engine-error
``dlq_detail``                a short description (no patient data)
``dlq_origin_topic``          the topic it was read from
``dlq_origin_partition``      its partition
``dlq_origin_offset``         its offset
``dlq_at``                    when it was dead-lettered (ISO 8601, UTC)
``dlq_worker``                the worker that rejected it
===========================  ===========================================

and counts it in ``presettle_worker_dead_letters_total{reason}``. Its offset is
then committed like any finished record: a dead letter is never silently lost.

After a fix, replay re-injects dead letters into their origin topic (without
the ``dlq_*`` headers and without reply headers — nobody waits any more)::

    python -m services.stream.deadletter replay [--since 2026-12-01T00:00:00Z] [--reason R] [--dry-run]

Replaying is safe to repeat for events: the worker's idempotency record answers
an event it already applied as a replay. Records dead-lettered again go back to
the dead-letter topic with their new reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from services.common import partition_ends
from services.common.settings import Settings
from services.stream import metrics

DLQ_HEADERS = ("dlq_reason", "dlq_detail", "dlq_origin_topic", "dlq_origin_partition", "dlq_origin_offset",
               "dlq_at", "dlq_worker")
# Not carried into a replay: nobody waits for its answer any more.
REPLY_HEADERS = ("reply_to", "reply_partition", "correlation_id")


def dead_letter_headers(message: Any, reason: str, detail: str, worker: str) -> list[tuple[str, bytes]]:
    original = message.headers or ()
    items = list(original.items()) if isinstance(original, dict) else list(original)
    kept = [(k, v) for k, v in items if k not in DLQ_HEADERS]
    return kept + [
        ("dlq_reason", reason.encode()),
        ("dlq_detail", detail[:200].encode(errors="replace")),
        ("dlq_origin_topic", message.topic.encode()),
        ("dlq_origin_partition", str(message.partition).encode()),
        ("dlq_origin_offset", str(message.offset).encode()),
        ("dlq_at", datetime.now(timezone.utc).isoformat().encode()),
        ("dlq_worker", worker.encode()),
    ]


async def send(producer: Any, settings: Settings, message: Any, reason: str, detail: str,
               timeout_s: float = 30.0) -> None:
    """Write ``message`` to the dead-letter topic (faust producer) and wait for the acknowledgement."""
    from services.stream.app import WORKER_ID

    headers = dead_letter_headers(message, reason, detail, WORKER_ID)

    async def produce() -> None:
        delivery = await producer.send(settings.deadletter_topic, message.key, message.value, None, None, headers)
        await delivery

    await asyncio.wait_for(produce(), timeout_s)
    metrics.DEAD_LETTERS.labels(reason).inc()


# -- replay -------------------------------------------------------------------------------
def _parse_since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def replay_plan(records: list[Any], settings: Settings, since: datetime | None = None,
                reason: str | None = None) -> list[dict[str, Any]]:
    """Which dead letters to re-inject, where, with which headers (pure: no I/O)."""
    allowed = {settings.events_topic, settings.status_topic}
    plan = []
    for record in records:
        headers = dict(record.headers or ())
        origin = headers.get("dlq_origin_topic", b"").decode(errors="replace")
        at_raw = headers.get("dlq_at", b"").decode(errors="replace")
        try:
            at = _parse_since(at_raw)
        except ValueError:
            at = None
        if since is not None and (at is None or at < since):
            continue
        if reason is not None and headers.get("dlq_reason", b"").decode(errors="replace") != reason:
            continue
        entry = {
            "dead_letter": f"{record.partition}@{record.offset}",
            "reason": headers.get("dlq_reason", b"").decode(errors="replace"),
            "origin": f"{origin}[{headers.get('dlq_origin_partition', b'?').decode(errors='replace')}]"
                      f"@{headers.get('dlq_origin_offset', b'?').decode(errors='replace')}",
            "topic": origin,
            "key": record.key,
            "value": record.value,
            "headers": [(k, v) for k, v in (record.headers or ()) if k not in DLQ_HEADERS and k not in REPLY_HEADERS]
            + [("dlq_replayed_from", f"{record.partition}@{record.offset}".encode())],
            "skip": None if origin in allowed else f"origin topic {origin!r} is not an input topic",
        }
        plan.append(entry)
    return plan


async def _read_all(settings: Settings, security: dict[str, Any], settle_s: float = 2.0) -> list[Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", **security)
    await consumer.start()
    try:
        await consumer.topics()  # loads the cluster metadata
        partitions = consumer.partitions_for_topic(settings.deadletter_topic) or set()
        tps = [TopicPartition(settings.deadletter_topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await partition_ends.end_offsets(consumer, tps)  # Tansu: not just ListOffsets
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            batches = await consumer.getmany(timeout_ms=int(settle_s * 1000))
            for batch in batches.values():
                records += batch
        return records
    finally:
        await consumer.stop()


async def replay(settings: Settings, since: datetime | None = None, reason: str | None = None,
                 dry_run: bool = False, security: dict[str, Any] | None = None) -> dict[str, Any]:
    """Re-inject dead letters into their origin topics; a summary (counts and each record's origin)."""
    from aiokafka import AIOKafkaProducer

    if security is None:  # TLS / SASL from settings (services/common/kafka_security.py)
        from services.common.kafka_security import aiokafka_kwargs

        security = aiokafka_kwargs(settings)
    records = await _read_all(settings, security)
    plan = replay_plan(records, settings, since, reason)
    todo = [e for e in plan if e["skip"] is None]
    if not dry_run and todo:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=0, acks="all", **security)
        await producer.start()
        try:
            deliveries = [await producer.send(e["topic"], e["value"], key=e["key"], headers=e["headers"])
                          for e in todo]
            await asyncio.gather(*deliveries)
        finally:
            await producer.stop()
    return {
        "dead_letters": len(records),
        "selected": len(plan),
        "replayed": 0 if dry_run else len(todo),
        "would_replay": len(todo) if dry_run else 0,
        "skipped": [{"dead_letter": e["dead_letter"], "why": e["skip"]} for e in plan if e["skip"]],
        "by_reason": dict(Counter(e["reason"] for e in plan)),
        "records": [{k: e[k] for k in ("dead_letter", "reason", "origin")} for e in plan],
        "dry_run": dry_run,
    }


# -- command line (also mounted by the ``presettle`` CLI through add_parser) ---------------
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``deadletter`` (with ``replay``) to an argparse subparsers object."""
    parser = subparsers.add_parser("deadletter", help="inspect and replay the worker's dead-letter topic")
    _configure(parser)
    return parser


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="deadletter_command", required=True)
    rp = sub.add_parser("replay", help="re-inject dead letters into their origin topic (after a fix)")
    rp.add_argument("--since", help="only dead letters written at or after this ISO 8601 time")
    rp.add_argument("--reason", help="only this reason (malformed, wrong-key, unknown-kind, engine-error)")
    rp.add_argument("--dry-run", action="store_true", help="list what would be replayed, send nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from services.common.settings import settings_or_exit

    settings = settings_or_exit()
    try:
        since = _parse_since(args.since)
    except ValueError as exc:
        print(f"deadletter: {exc}", file=sys.stderr)
        return 2
    summary = asyncio.run(replay(settings, since=since, reason=args.reason, dry_run=args.dry_run))
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.stream.deadletter", description=__doc__.split("\n")[0])
    _configure(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
