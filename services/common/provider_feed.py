"""Institution and doctor status timelines, broadcast to every worker (issue 10).

Events are partitioned by patient, so any worker may judge a line at any institution or by any
doctor: every worker must hold every provider's timeline. The bureau's records
(services/contracts/provider_status.py) go to one compacted topic with one partition
(``<prefix>.provider-status``, one record per update). Each worker holds one
:class:`ProviderFeed`: at start it reads the topic from the start to its end into a
:class:`services.rules.providers.Providers` — before its agent decides the first event (the
agent waits for :attr:`ProviderFeed.ready`) — then follows it. :attr:`ProviderFeed.position`
(the next offset to read) is in every probe reply, so the ingress can tell when every worker
serving an events partition holds a record it wrote (``POST /v1/institution-status``
answers 200 only then).

This is the rule base's broadcast pattern (services/common/rulebase_feed.py) with a plain
aiokafka consumer without a group, not a faust ``GlobalTable``: the ingress writes the records
(a GlobalTable is written by the worker that owns the key's partition), the position is
exact and cheap to report, and the worker's commit-safety transport (services/stream/transport.py)
is not involved. docs/operations.md (*Provider status*) has the reasons and figures.

The ingress holds one too, to write (:meth:`ProviderFeed.publish`, acks=all) and, when
started with ``follow=True``, to answer look-ups.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from services.common import partition_ends
from services.common.aio import stop_task_and_clients
from services.common.broker import ensure_topics
from services.common.kafka_security import aiokafka_kwargs
from services.common.settings import Settings
from services.contracts.provider_status import record_key
from services.rules.providers import Providers

log = logging.getLogger("presettle.providers")

RECORDS = Counter("presettle_provider_status_records_total",
                  "Provider status records read from the provider-status topic, by outcome "
                  "(applied, superseded: an older update for a period already updated, unreadable).", ["outcome"])
PROVIDERS = Gauge("presettle_provider_status_providers",
                  "Institutions and doctors with a status timeline held by this process.", ["subject"])
POLL_MS = 50  # fetch wait of the follower: a record reaches every worker within about this


class ProviderFeed:
    def __init__(self, settings: Settings, client_id: str, poll_ms: int = POLL_MS) -> None:
        self.settings = settings
        self.client_id = client_id
        self.poll_ms = poll_ms
        self.providers = Providers()
        self.position = 0  # the next offset of the topic to read: every record before it is applied
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, follow: bool = True) -> None:
        """Create the topic if missing; with ``follow``, read it to its end, then follow it."""
        s = self.settings
        security = aiokafka_kwargs(s)
        await ensure_topics(s.bootstrap, {s.provider_status_topic: 1}, s.replication_factor,
                            configs={s.provider_status_topic: {"cleanup.policy": "compact"}}, security=security)
        if not follow:
            self.ready.set()
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=self.poll_ms, client_id=f"{self.client_id}-providers", **security)
        await consumer.start()
        self._consumer = consumer
        tp = TopicPartition(s.provider_status_topic, 0)
        consumer.assign([tp])
        end = (await partition_ends.end_offsets(consumer, [tp]))[tp]  # Tansu: not just ListOffsets
        await consumer.seek_to_beginning(tp)
        t0 = time.monotonic()
        while self.position < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            for record in batches.get(tp, ()):
                self._take(record.offset, record.value)
            self.position = max(self.position, await consumer.position(tp))
        counts = self.providers.counts()
        log.warning("provider status: %d institution(s), %d doctor(s), read %s to offset %d in %.2f s",
                    counts["institution"], counts["doctor"], s.provider_status_topic, self.position,
                    time.monotonic() - t0)
        self.ready.set()
        self._task = asyncio.get_running_loop().create_task(self._follow(tp))

    async def stop(self) -> None:
        await stop_task_and_clients(self._task, (self._consumer, self._producer))

    # -- reading ---------------------------------------------------------------------------
    def _take(self, offset: int, value: bytes | None) -> None:
        try:
            record = orjson.loads(value or b"")
            outcome = "applied" if self.providers.apply(record) else "superseded"
        except (ValueError, KeyError, TypeError) as exc:  # a record this release cannot read: skipped, said
            outcome = "unreadable"
            log.error("provider-status topic: unreadable record at offset %d (%s)", offset, type(exc).__name__)
        RECORDS.labels(outcome).inc()
        self.position = offset + 1  # records come in offset order (a topic re-created empty starts again at 0)

    async def _follow(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(tp, timeout_ms=self.poll_ms * 4)
                for record in batches.get(tp, ()):
                    self._take(record.offset, record.value)
                for subject, n in self.providers.counts().items():
                    PROVIDERS.labels(subject).set(n)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away for a while: keep serving what we hold, try again
                log.warning("provider-status topic: %r; retrying", exc)
                await asyncio.sleep(1.0)

    # -- writing (the ingress's admin routes) ---------------------------------------------------
    async def publish(self, wire: dict[str, Any], timeout_s: float) -> int:
        """Write one record (acks=all) and return its offset once the broker acknowledged it."""
        if self._producer is None:
            s = self.settings
            producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=0, acks="all",
                                        request_timeout_ms=10_000, client_id=f"{self.client_id}-providers",
                                        **aiokafka_kwargs(s))
            await producer.start()
            self._producer = producer
        md = await asyncio.wait_for(self._producer.send_and_wait(
            self.settings.provider_status_topic, orjson.dumps(wire), key=record_key(wire).encode(), partition=0),
            timeout_s)
        return int(md.offset)
