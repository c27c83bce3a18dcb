"""Where a backtest's events come from: a JSON Lines file or the events topic.

Every event is validated with the ingress's own model (``services.contracts.event.Event``) and
handed on as its wire form (``Event.to_wire()``, what the worker reads), so a backtest sees
exactly what the worker would have seen. A line that is not a valid event is reported with its
line number and the field at fault, and skipped: an export of a busy day with a handful of
broken lines still tells what a rule change would do (``--strict`` makes the first one fatal).
"""

from __future__ import annotations

import gzip
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from pydantic import ValidationError

from services.backtest.replay import History
from services.common import partition_ends
from services.contracts.event import Event

#: Bad lines kept (with their messages) in the report; the count covers all of them.
BAD_LINES_KEPT = 50


class EventsError(ValueError):
    """The events cannot be read at all (no such file, not gzip, a bad line under --strict)."""


@dataclass
class BadLines:
    count: int = 0
    first: list[dict[str, Any]] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.count += 1
        if len(self.first) < BAD_LINES_KEPT:
            self.first.append({"line": where, "error": message})


def explain(exc: ValidationError) -> str:
    """``field.path: message`` for each error of a validation failure (the field at fault first)."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(event)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def wire_event(raw: bytes | str) -> dict[str, Any]:
    """One ``POST /v1/events`` body → the worker's wire dict (raises ValidationError / ValueError)."""
    return Event.model_validate_json(raw).to_wire()


def _open(path: pathlib.Path) -> IO[bytes]:
    if not path.is_file():
        raise EventsError(f"{path}: no such file")
    fh = path.open("rb")
    magic = fh.read(2)
    fh.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh)  # type: ignore[return-value]
    if path.suffix == ".gz":
        fh.close()
        raise EventsError(f"{path}: named .gz but not gzip data")
    return fh


def read_file(path: pathlib.Path | str, bad: BadLines, strict: bool = False,
              progress: Callable[[int, int], None] | None = None) -> Iterator[dict[str, Any]]:
    """The valid events of a JSON Lines file (``.gz``: gzip), in file order; blank lines are skipped.

    ``progress(lines, bytes_read)`` is called every 10,000 lines."""
    path = pathlib.Path(path)
    with _open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield wire_event(line)
            except ValidationError as exc:
                msg = explain(exc)
                if strict:
                    raise EventsError(f"{path.name} line {n}: {msg}") from None
                bad.add(str(n), msg)
            except ValueError as exc:  # not JSON, or not an object
                if strict:
                    raise EventsError(f"{path.name} line {n}: {exc}") from None
                bad.add(str(n), str(exc))
            if progress is not None and n % 10_000 == 0:
                raw = getattr(fh, "fileobj", fh)
                progress(n, raw.tell())


def parse_since(text: str) -> datetime:
    """``--since``: an ISO 8601 time (naive = UTC) or a duration back from now (``6h``, ``2d``, ``30m``)."""
    text = text.strip()
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EventsError(f"--since {text!r}: expected an ISO 8601 time or a duration like 6h, 2d") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


async def read_topic(settings: Any, since: datetime, bad: BadLines, strict: bool = False,
                     progress: Callable[[int, int], None] | None = None,
                     idle_s: float = 2.0) -> list[dict[str, Any]]:
    """The events on the events topic from ``since`` (record time) up to its end when called.

    Reads every partition from the start of what the cluster retains, without a consumer group
    (no offsets are committed: the workers' group is untouched), and keeps records written at or
    after ``since`` of kind *event*, and of kind *history* as :class:`History` (applied to the
    state, not evaluated, as the worker does); probes and status records are left out. Kafka
    security from the settings, as every client.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from services.common.kafka_security import aiokafka_kwargs
    from services.contracts import envelope as env

    KINDS = {k.value for k in env.Kind}

    topic = settings.events_topic
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", **aiokafka_kwargs(settings))
    await consumer.start()
    out: list[dict[str, Any]] = []
    since_ms = int(since.timestamp() * 1000)
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise EventsError(f"topic {topic!r} not found at {settings.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await partition_ends.end_offsets(consumer, tps)  # Tansu: not just ListOffsets
        # From the start of what is retained, filtered by record time: the broker's time index
        # (ListOffsets by timestamp) would skip ahead, but it is unreliable on some brokers
        # (Tansu 0.6), and a backtest that silently misses events would mislead.
        await consumer.seek_to_beginning(*tps)
        seen = 0
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            batches = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=5000)
            if not batches:
                break  # nothing more within idle_s: the retained part has been read
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset >= ends[tp] or rec.timestamp < since_ms:
                        continue
                    headers = env.header_map(rec.headers)
                    kind = env.kind_of(headers, rec.topic, settings.status_topic)
                    declared = headers.get(env.KIND)
                    if declared is not None:
                        kind = env.Kind(declared.decode()) if declared.decode() in KINDS else env.Kind.probe
                    if kind not in (env.Kind.event, env.Kind.history):
                        continue
                    seen += 1
                    where = f"{tp.partition}@{rec.offset}"
                    try:
                        wire = wire_event(rec.value or b"")
                        out.append(History(wire) if kind is env.Kind.history else wire)
                    except ValidationError as exc:
                        if strict:
                            raise EventsError(f"record {where}: {explain(exc)}") from None
                        bad.add(where, explain(exc))
                    except ValueError as exc:
                        if strict:
                            raise EventsError(f"record {where}: {exc}") from None
                        bad.add(where, str(exc))
            if progress is not None:
                progress(seen, 0)
        return out
    finally:
        await consumer.stop()
