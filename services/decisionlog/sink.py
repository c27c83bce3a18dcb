"""``presettle sink``: the decision-log consumer — the service's topics into the database.

Reads, in one consumer group (``<prefix>-decisionlog``), the audit topic (every decision), the
feedback topic, the insured-status topic, the rule-base topic (manifests and activations; the
bundle chunks are skipped) and the provider-status topic, and stores each batch in one transaction
(services.decisionlog.store), idempotently. A provider-status record of a suspension (定点协议
suspended / terminated, a doctor's 医保支付资格 suspended) whose period covers decisions already
stored that were not flagged for it writes retrospective findings for them (事后, R42/R43; see
services.decisionlog.retro) after the batch, before the offsets are committed; each decision stored
is also looked at against the provider timelines, so one still unread when its suspension's record
was read is not missed. A record read twice (a restart before the offsets were committed, a replay) is
stored once. Offsets are committed only after the batch is stored (at least once). A record the
sink cannot read is logged (without patient data) and counted, never retried forever.

Metrics on PRESETTLE_SINK_METRICS_PORT (/metrics): records by result, lag in records per topic and
in seconds (services/decisionlog/metrics.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from services.common import logs
from services.common.kafka_security import aiokafka_kwargs
from services.common.privacy import pseudonym
from services.common.provider_feed import ProviderFeed
from services.common.settings import Settings, settings_or_exit
from services.decisionlog import metrics, records, retro
from services.decisionlog.store import Store, now_iso
from services.rules.engine import Engine

log = logging.getLogger("presettle.sink")

FETCH_WAIT_MS = 100  # not on the request path: a relaxed poll
PROVIDER_POLL_MS = 1000  # the provider timeline's follower: nothing waits on it
BATCH_MAX = 2000


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}-decisionlog"


class Batch:
    """The rows of one poll, by table (pure apart from the pseudonym)."""

    def __init__(self) -> None:
        self.decisions: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self.feedback: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.revisions: list[dict[str, Any]] = []
        self.providers: list[dict[str, Any]] = []  # provider-status records (wire form), in topic order
        self.newest_decided: str | None = None
        self.skipped: dict[str, int] = {}
        self.read: dict[str, int] = {}  # records read per kind (a replay within one batch counts twice)

    def add(self, kind: str, key: bytes | None, value: bytes | None) -> None:
        if kind == "rulebase":
            text_key = (key or b"").decode(errors="replace")
            if not text_key.startswith("manifest.") and text_key != "active":
                self.skipped[kind] = self.skipped.get(kind, 0) + 1  # bundle chunks: not stored
                return
        record = orjson.loads(value or b"")
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        self.read[kind] = self.read.get(kind, 0) + 1
        if kind == "decisions":
            row, alerts = records.decision_rows(record, pseudonym)
            self.decisions[row["decision_id"]] = (row, alerts)
            self.newest_decided = max(self.newest_decided or "", row["decided_at"])
        elif kind == "feedback":
            self.feedback.append(records.feedback_row(record))
        elif kind == "status":
            self.statuses.append(records.status_row(record, pseudonym, now_iso()))
        elif kind == "rulebase":
            revision = records.rulebase_row((key or b"").decode(), record, now_iso())
            if revision is not None:
                self.revisions.append(revision)
        elif kind == "provider":
            self.providers.append(record)


class Sink:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.kinds = {settings.decisions_topic: "decisions", settings.feedback_topic: "feedback",
                      settings.status_topic: "status", settings.rulebase_topic: "rulebase",
                      settings.provider_status_topic: "provider"}
        self.consumer: AIOKafkaConsumer | None = None
        self.stored = 0
        # Every provider's timeline (read from the start of its topic, then followed), so a record is
        # judged against the timeline every worker holds; the rule texts of the rule base configured.
        self.feed = ProviderFeed(settings, f"presettle-sink-{settings.instance_id}", poll_ms=PROVIDER_POLL_MS)
        self.engine: Engine | None = None

    async def start(self) -> None:
        s = self.settings
        if self.engine is None:
            self.engine = await asyncio.to_thread(Engine.load, s.rulebase_dir)
        if not self.feed.ready.is_set():
            await self.feed.start()  # creates the provider-status topic if missing, reads it to its end
        self.consumer = AIOKafkaConsumer(
            *self.kinds, bootstrap_servers=s.bootstrap, group_id=group_id(s), enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS, client_id=f"presettle-sink-{s.instance_id}",
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000, max_poll_records=BATCH_MAX,
            **aiokafka_kwargs(s))
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def close(self) -> None:
        await self.stop()
        await self.feed.stop()

    async def _retrospective(self, provider_records: list[dict[str, Any]]) -> int:
        """Retrospective findings of the batch's provider-status records (idempotent: ids derived from
        the record and the event, so a replayed batch stores nothing twice); the number stored."""
        assert self.engine is not None
        stored = 0
        for record in provider_records:
            try:
                self.feed.providers.apply(record)  # (the feed may not have read it yet; applying twice is harmless)
            except (KeyError, ValueError):
                continue
            if not retro.wanted(record):
                continue
            subject = record["subject"]
            candidates = await asyncio.to_thread(
                self.store.provider_candidates, subject, retro.subject_id(record), record["effective_from"],
                record.get("effective_to"), records.utc_iso(record["updated_at"]), retro.RULE_OF[subject], retro.SCENES)
            findings = retro.provider_findings(self.engine, self.feed.providers, record, candidates, now_iso())
            stored += await self._store_findings(findings)
        return stored

    async def _lagging(self, decisions: list[retro.Finding]) -> int:
        """Retrospective findings of the batch's decisions that a suspension recorded after them
        (and read before them) concerns; the number stored."""
        assert self.engine is not None
        return await self._store_findings(retro.lagging_findings(self.engine, self.feed.providers, decisions, now_iso()))

    async def _store_findings(self, findings: list[retro.Finding]) -> int:
        if not findings:
            return 0
        counts = await asyncio.to_thread(self.store.write, findings, (), (), (), self.settings.review_deadlines)
        if counts["cases"]:
            metrics.CASES_OPENED.inc(counts["cases"])
        if counts["decisions"]:
            metrics.RETROSPECTIVE.inc(counts["decisions"])
        return int(counts["decisions"])

    async def run_once(self, timeout_ms: int = 1000) -> int:
        """One poll → one transaction → commit; the number of records read."""
        assert self.consumer is not None
        polled = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=BATCH_MAX)
        batch = Batch()
        n = 0
        for tp, messages in polled.items():
            kind = self.kinds.get(tp.topic, "unknown")
            for m in messages:
                n += 1
                try:
                    batch.add(kind, m.key, m.value)
                except Exception as exc:  # noqa: BLE001 - a bad record is counted and skipped, never retried forever
                    metrics.RECORDS.labels(kind, "invalid").inc()
                    log.warning("skipped an unreadable %s record at %s[%d]@%d: %s", kind, tp.topic, tp.partition,
                                m.offset, type(exc).__name__)
        if n:
            t0 = time.perf_counter()
            counts = await asyncio.to_thread(
                self.store.write, list(batch.decisions.values()), batch.feedback, batch.statuses, batch.revisions,
                self.settings.review_deadlines)
            metrics.WRITE_SECONDS.observe(time.perf_counter() - t0)
            for kind, new in (("decisions", counts["decisions"]), ("feedback", counts["feedback"]),
                              ("status", counts["statuses"]), ("rulebase", counts["revisions"]),
                              ("provider", batch.read.get("provider", 0))):
                read = batch.read.get(kind, 0)
                if new:
                    metrics.RECORDS.labels(kind, "stored").inc(new)
                if read - new:
                    metrics.RECORDS.labels(kind, "duplicate").inc(read - new)
            for kind, skipped in batch.skipped.items():
                metrics.RECORDS.labels(kind, "skipped").inc(skipped)
            if counts["cases"]:
                metrics.CASES_OPENED.inc(counts["cases"])
            if batch.decisions:
                self.stored += await self._lagging(list(batch.decisions.values()))
            if batch.providers:
                self.stored += await self._retrospective(batch.providers)
            if batch.newest_decided:
                decided = datetime.strptime(batch.newest_decided, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                metrics.LAG_SECONDS.set(max(0.0, time.time() - decided.timestamp()))
            self.stored += counts["decisions"]
            await self.consumer.commit()
        await self._record_lag()
        return n

    async def _record_lag(self) -> None:
        assert self.consumer is not None
        lag: dict[str, int] = dict.fromkeys(self.kinds.values(), 0)
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = await self.consumer.position(tp)
            except Exception:  # noqa: BLE001 - no position yet (the partition is being reassigned)
                continue
            lag[self.kinds.get(tp.topic, "unknown")] += max(0, end - position)
        for kind, value in lag.items():
            metrics.LAG_RECORDS.labels(kind).set(value)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    store = Store.open(settings.database)
    sink = Sink(settings, store)
    await sink.start()
    log.warning("decision-log sink ready (%s database, group %s)", store.dialect, group_id(settings))
    try:
        while not stop.is_set():
            try:
                await sink.run_once()
            except Exception as exc:  # noqa: BLE001 - a database hiccup: the batch is read again
                log.error("sink batch failed (%s: %s); retrying from the last commit", type(exc).__name__, exc)
                await sink.stop()
                await asyncio.sleep(2)
                await sink.start()
    finally:
        await sink.close()
        store.close()


def main() -> int:
    settings = settings_or_exit()
    logs.setup("sink", settings.log_format, settings.log_level)
    if settings.sink_metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.sink_metrics_port, addr=settings.http_host)
        except OSError as exc:
            log.warning("sink metrics port %s unavailable (%s); metrics not served", settings.sink_metrics_port, exc)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
