"""The rule base a process serves, and how it follows the rule-base topic (issue 12).

Every worker and every ingress holds one :class:`RulebaseFeed`. At start it serves the
packaged rule base (``services/data``, or ``PRESETTLE_RULEBASE_DIR``), then reads the
rule-base topic (services/contracts/rulebase.py) from the start to its end and, if some
revision was ever published, switches to the one the newest ``active`` record names — before
the process serves its first event (the worker's agent waits for :attr:`RulebaseFeed.ready`).
After that it follows the topic: when a new ``active`` record arrives it rebuilds the engine
from the stored chunks (in a thread, so the event loop keeps serving with the old one) and
swaps :attr:`RulebaseFeed.current` in one assignment. A worker reads ``current`` once per
event, so each decision is made by exactly one revision.

A revision whose chunks are missing, corrupt, or that no longer loads is not switched to:
the process keeps serving what it had and logs the error.

The ingress also writes to the topic (:meth:`RulebaseFeed.publish`, :meth:`RulebaseFeed.activate`)
after ``POST /v1/admin/rulebase`` validated a bundle (services/rules/golden.check_bundle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from services.common import partition_ends
from services.common.aio import stop_task_and_clients
from services.common.broker import ensure_topics
from services.common.kafka_security import aiokafka_kwargs
from services.common.settings import Settings
from services.contracts import rulebase as rb
from services.rules.bundle import bundle_files, pack, revision_of_files, unpack
from services.rules.engine import DEFAULT_DATA, Engine

log = logging.getLogger("presettle.rulebase")

REVISION_INFO = Gauge("presettle_rulebase_revision_info",
                      "The rule-base revision this process serves (1 for the one it serves).", ["revision"])
SWITCHES = Counter("presettle_rulebase_switches_total",
                   "Switches to another rule-base revision without a restart, by outcome (switched, failed).",
                   ["outcome"])

CACHE_MAX = 2
POLL_MS = 500  # fetch wait of the follower: a published revision is seen within about this
FOLLOW_TIMEOUT_S = 10.0  # publish/activate wait this long for this process to serve the revision


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Served:
    """One rule base as served: the engine, its revision id and when it became active."""

    engine: Engine
    revision: str
    activated_at: str | None  # None: the packaged rule base (never published)
    source: str  # "packaged" | "published"


class RevisionUnavailable(Exception):
    """A revision that is not stored on the topic (or not complete)."""


class RulebaseFeed:
    def __init__(self, settings: Settings, client_id: str, poll_ms: int = POLL_MS) -> None:
        self.settings = settings
        self.client_id = client_id
        self.poll_ms = poll_ms
        data_dir = pathlib.Path(settings.rulebase_dir) if settings.rulebase_dir else DEFAULT_DATA
        files = dict(bundle_files(data_dir))
        self.packaged_files = files
        self.packaged = Served(Engine.load(data_dir), revision_of_files(files), None, "packaged")
        self.current = self.packaged
        self.ready = asyncio.Event()
        self.manifests: dict[str, rb.Manifest] = {}
        self.active: rb.Active | None = None
        self._chunks: dict[str, dict[int, bytes]] = {}
        # Engines already built (the one just validated by a publish, the one served before a switch):
        # a publish or a roll-back switches without building it again. At most CACHE_MAX.
        self._cache: dict[str, Engine] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.listeners: list[Callable[[Served], None]] = []
        self.known_rule_ids: set[str] = {r.id for r in self.packaged.engine.rules}
        REVISION_INFO.labels(self.packaged.revision).set(1)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the topic to its end, serve the active revision, then follow the topic."""
        s = self.settings
        security = aiokafka_kwargs(s)
        await ensure_topics(s.bootstrap, {s.rulebase_topic: 1}, s.replication_factor,
                            configs={s.rulebase_topic: {"cleanup.policy": "compact"}}, security=security)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=self.poll_ms, client_id=f"{self.client_id}-rulebase",
            max_partition_fetch_bytes=4 * rb.CHUNK_BYTES, fetch_max_bytes=16 * rb.CHUNK_BYTES, **security)
        await consumer.start()
        self._consumer = consumer
        tp = TopicPartition(s.rulebase_topic, 0)
        consumer.assign([tp])
        end = (await partition_ends.end_offsets(consumer, [tp]))[tp]  # Tansu: not just ListOffsets
        await consumer.seek_to_beginning(tp)
        t0 = time.monotonic()
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            for record in batches.get(tp, ()):
                self._take(record.key, record.value)
        await self._switch()
        log.warning("rule base %s (%s%s), read %d record(s) of %s in %.2f s", self.current.revision,
                    self.current.source, f", active since {self.current.activated_at}" if self.current.activated_at
                    else "", end, s.rulebase_topic, time.monotonic() - t0)
        self.ready.set()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        await stop_task_and_clients(self._task, (self._consumer, self._producer))

    # -- reading ---------------------------------------------------------------------------
    def _take(self, key: bytes | None, value: bytes | None) -> bool:
        """Store one record; True when it is an ``active`` record."""
        kind, revision, n = rb.parse_key((key or b"").decode(errors="replace"))
        try:
            if kind == "bundle":
                self._chunks.setdefault(revision, {})[n] = value or b""
            elif kind == "manifest":
                manifest = rb.Manifest.model_validate_json(value or b"")
                self.manifests.pop(revision, None)  # re-published: moves to the end (newest)
                self.manifests[revision] = manifest
                self.known_rule_ids.update(manifest.rules)
            elif kind == "active":
                self.active = rb.Active.model_validate_json(value or b"")
                return True
        except ValueError as exc:  # a record this release cannot read: skipped, said once
            log.error("rule-base topic: unreadable %s record (%s)", kind, exc)
        return False

    def files_of(self, revision: str) -> dict[str, bytes]:
        """The files of a stored revision (checked: complete, intact, the revision it claims)."""
        manifest = self.manifests.get(revision)
        if manifest is None:
            raise RevisionUnavailable(f"revision {revision} is not stored on the rule-base topic")
        parts = self._chunks.get(revision, {})
        missing = [n for n in range(manifest.chunks) if n not in parts]
        if missing:
            raise RevisionUnavailable(f"revision {revision}: chunk(s) {missing} missing")
        blob = b"".join(parts[n] for n in range(manifest.chunks))
        if rb.sha256(blob) != manifest.sha256:
            raise RevisionUnavailable(f"revision {revision}: the chunks do not match the manifest's SHA-256")
        files = unpack(blob)
        if revision_of_files(files) != revision:
            raise RevisionUnavailable(f"revision {revision}: the content hashes to {revision_of_files(files)}")
        return files

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=self.poll_ms * 2)
                changed = False
                for records in batches.values():
                    for record in records:
                        changed = self._take(record.key, record.value) or changed
                if changed:
                    await self._switch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away for a while: keep serving, try again
                log.warning("rule-base topic: %r; retrying", exc)
                await asyncio.sleep(1.0)

    async def _switch(self) -> None:
        """Serve the revision the newest ``active`` record names (the packaged one if none)."""
        active = self.active
        if active is None or active.revision == self.current.revision:
            return
        try:
            if active.revision == self.packaged.revision:
                engine = self.packaged.engine
            elif active.revision in self._cache:
                engine = self._cache.pop(active.revision)
            else:
                files = self.files_of(active.revision)
                engine = await asyncio.to_thread(Engine.from_files, files)
        except Exception as exc:
            SWITCHES.labels("failed").inc()
            log.error("rule base %s cannot be served (%s); still serving %s", active.revision, exc,
                      self.current.revision)
            return
        previous = self.current
        self.current = Served(engine, active.revision, active.activated_at, "published")
        if previous.revision != self.packaged.revision:
            self._remember(previous.revision, previous.engine)  # a roll-back to it is instant
        self.known_rule_ids.update(r.id for r in engine.rules)
        with contextlib.suppress(KeyError):
            REVISION_INFO.remove(previous.revision)
        REVISION_INFO.labels(active.revision).set(1)
        SWITCHES.labels("switched").inc()
        log.warning("rule base switched %s → %s (active since %s), no restart", previous.revision,
                    active.revision, active.activated_at)
        for listener in self.listeners:
            listener(self.current)
        async with self._changed:
            self._changed.notify_all()

    def _remember(self, revision: str, engine: Engine) -> None:
        self._cache.pop(revision, None)
        self._cache[revision] = engine
        while len(self._cache) > CACHE_MAX:
            self._cache.pop(next(iter(self._cache)))

    async def wait_for(self, revision: str, timeout: float = FOLLOW_TIMEOUT_S) -> bool:
        """Wait until this process serves ``revision``; False when it did not within ``timeout``."""
        async def serving() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.current.revision == revision)
        try:
            await asyncio.wait_for(serving(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # -- writing (the ingress's admin routes) -------------------------------------------------
    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            s = self.settings
            producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=0, acks="all",
                                        request_timeout_ms=30_000, max_request_size=2 * rb.CHUNK_BYTES,
                                        client_id=f"{self.client_id}-rulebase", **aiokafka_kwargs(s))
            await producer.start()
            self._producer = producer
        return self._producer

    async def _send(self, key: str, value: bytes) -> None:
        producer = await self._producer_started()
        await producer.send_and_wait(self.settings.rulebase_topic, value, key=key.encode(), partition=0)

    async def store(self, files: Mapping[str, bytes], engine: Engine, cases: int, note: str | None = None) -> str:
        """Write a bundle's chunks and manifest (not yet active); return its revision."""
        revision = revision_of_files(files)
        if revision != self.current.revision:
            self._remember(revision, engine)  # validated just now: the switch needs no second build
        if revision in self.manifests:
            return revision
        blob = pack(files)
        parts = rb.chunks(blob)
        for n, part in enumerate(parts):
            await self._send(rb.chunk_key(revision, n), part)
        manifest = rb.Manifest(
            revision=revision, chunks=len(parts), blob_bytes=len(blob), sha256=rb.sha256(blob), published_at=_now(),
            files=len(files), cases=cases, note=note,
            rules={r.id: rb.RuleMode(version=r.version, mode=r.mode) for r in engine.rules})
        await self._send(rb.manifest_key(revision), manifest.model_dump_json().encode())
        self._take(rb.manifest_key(revision).encode(), manifest.model_dump_json().encode())
        for n, part in enumerate(parts):
            self._chunks.setdefault(revision, {})[n] = part
        return revision

    async def activate(self, revision: str, action: str = "activate") -> rb.PublishResult:
        """Make ``revision`` (stored, or the packaged one) the active revision everywhere."""
        if revision == self.current.revision and self.active is not None:
            return rb.PublishResult(revision=revision, active=True, activated_at=self.current.activated_at,
                                    unchanged=True)
        if revision not in self.manifests:
            if revision != self.packaged.revision:
                raise RevisionUnavailable(f"revision {revision} is not stored on the rule-base topic")
            # Back to the release's own rule base: stored like any other revision first.
            await self.store(self.packaged_files, self.packaged.engine, 0, note="the packaged rule base")
        self.files_of(revision)  # complete and intact, or RevisionUnavailable
        history = list(self.active.history if self.active else [])
        now = _now()
        history.append(rb.Activation(revision=revision, activated_at=now, action=action))
        record = rb.Active(revision=revision, activated_at=now, history=history[-rb.HISTORY_MAX:])
        await self._send(rb.ACTIVE_KEY, record.model_dump_json().encode())
        switched = await self.wait_for(revision)
        return rb.PublishResult(revision=revision, active=switched, activated_at=now,
                                rules=len(self.current.engine.rules) if switched else None)

    def revisions(self) -> rb.Revisions:
        active = self.current.revision
        out = [rb.RevisionInfo(revision=m.revision, published_at=m.published_at, active=m.revision == active,
                               files=m.files, cases=m.cases, blob_bytes=m.blob_bytes, rules=m.rules, note=m.note)
               for m in self.manifests.values()]
        return rb.Revisions(active=active, activated_at=self.current.activated_at, packaged=self.packaged.revision,
                            revisions=out, history=list(self.active.history) if self.active else [])


def catalog(served: Served) -> dict[str, Any]:
    """``GET /v1/rules``: the revision, when it became active, and the rules."""
    rules = served.engine.rules_catalog()
    return {"revision": served.revision, "activated_at": served.activated_at, "source": served.source,
            "count": len(rules), "rules": rules}
