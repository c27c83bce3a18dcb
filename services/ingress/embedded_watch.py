"""The embedded broker's partition lengths, watched: past a threshold it is out of its depth.

The embedded broker (Tansu 0.6, memory storage) answers a fetch at the tail of a partition in
time proportional to the partition's length (broker CPU per record 0.22 ms at 1,000 records,
1.16 ms at 5,000, 1.45 ms at 8,000), honours no retention and trims nothing, so a long-lived
development stack gets slower and slower under load (../shared/stack.md; README, *The embedded
broker's limits*). Only a restart (or deleting a topic) empties it.

When the stack started the embedded broker (``PRESETTLE_EMBEDDED_BROKER``, set by ``make run``
for its children), the ingress reads the end offsets of the service's topics every
:data:`WATCH_S` seconds (one ListOffsets request; the partitions start at offset 0 since
nothing is trimmed). Past ``PRESETTLE_EMBEDDED_PARTITION_LIMIT`` records in one partition it
logs a warning once (and once more when it is back under), reports ``"broker": "degraded"`` in
``/healthz`` (whose status code still follows the worker round trip: a degraded broker still
answers) and sets ``presettle_embedded_broker_degraded``.

The reply topic is ours to recreate: when one of its partitions passes the limit, the watch asks
the engine client to rotate it (services/ingress/engine_client.py, *Reply topic rotation*) — new
requests get an empty reply topic, the old one is read until its last waiting request is
answered, then deleted. The other topics hold the events, the state and the audit trail: they
are never recreated; only a restart of the stack (or Apache Kafka) helps there.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.aio import quietly
from services.common.kafka_security import aiokafka_kwargs
from services.common.settings import Settings
from services.contracts.topics import service_topics
from services.ingress import metrics

log = logging.getLogger("presettle.ingress")



@dataclass(frozen=True)
class Longest:
    topic: str
    partition: int
    records: int


def longest(ends: dict[tuple[str, int], int]) -> Longest | None:
    """The partition holding the most records (pure)."""
    if not ends:
        return None
    (topic, partition), records = max(ends.items(), key=lambda item: (item[1], item[0]))
    return Longest(topic, partition, records)


class ReplyTopicOwner(Protocol):
    """What the watch needs of the engine client: its current reply topic, and a way to replace it."""

    reply_topic: str

    async def rotate_reply_topic(self) -> str | None: ...


class EmbeddedBrokerWatch:
    def __init__(self, settings: Settings, extra_topics: dict[str, int] | None = None,
                 replies: ReplyTopicOwner | None = None) -> None:
        self.settings = settings
        self.topics = service_topics(settings) | (extra_topics or {})
        self.replies = replies
        self.interval_s = settings.embedded_watch_s
        self.limit = settings.embedded_partition_limit
        self.enabled = settings.embedded_broker and self.limit > 0
        self.longest: Longest | None = None
        self.degraded = False
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await quietly(self._consumer.stop())

    def health(self) -> dict[str, Any]:
        """What /healthz adds: nothing for Apache Kafka; the embedded broker's state otherwise."""
        if not self.enabled:
            return {}
        out: dict[str, Any] = {"broker": "degraded" if self.degraded else "ok"}
        if self.longest is not None:
            out["broker_longest_partition"] = {"topic": self.longest.topic, "partition": self.longest.partition,
                                               "records": self.longest.records, "limit": self.limit}
        return out

    def observe(self, ends: dict[tuple[str, int], int]) -> None:
        """Take one reading of the end offsets: gauge, state, a log line on each change of state."""
        self.longest = longest(ends)
        records = self.longest.records if self.longest else 0
        metrics.EMBEDDED_PARTITION_RECORDS.set(records)
        degraded = records > self.limit
        if degraded and not self.degraded:
            assert self.longest is not None
            log.warning(
                "embedded broker degraded: %s[%d] holds %d records (limit %d, PRESETTLE_EMBEDDED_PARTITION_LIMIT). "
                "The embedded broker (memory only) slows down as its partitions grow and never trims them: restart "
                "the stack (make run) to start empty, or set PRESETTLE_KAFKA_BOOTSTRAP to Apache Kafka for "
                "sustained load (README, The embedded broker's limits)",
                self.longest.topic, self.longest.partition, records, self.limit)
        elif self.degraded and not degraded:
            log.warning("embedded broker no longer degraded: longest partition %d records (limit %d)", records,
                        self.limit)
        self.degraded = degraded
        metrics.EMBEDDED_DEGRADED.set(1 if degraded else 0)

    def reply_topic_full(self, ends: dict[tuple[str, int], int]) -> bool:
        """Whether a partition of the current reply topic holds more than the limit (pure)."""
        if self.replies is None:
            return False
        topic = self.replies.reply_topic
        return any(records > self.limit for (t, _), records in ends.items() if t == topic)

    async def read(self) -> dict[tuple[str, int], int]:
        if self._consumer is None:
            s = self.settings
            self._consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False,
                                              client_id=f"presettle-ingress-{s.instance_id}-watch",
                                              **aiokafka_kwargs(s))
            await self._consumer.start()
        topics = dict(self.topics)
        if self.replies is not None:
            topics[self.replies.reply_topic] = self.settings.partitions
        tps = [TopicPartition(topic, p)
               for topic in topics
               for p in sorted(self._consumer.partitions_for_topic(topic) or range(topics[topic]))]
        ends = await self._consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}

    async def _run(self) -> None:
        while True:
            try:
                ends = await asyncio.wait_for(self.read(), self.interval_s)
                if self.replies is not None and self.reply_topic_full(ends):
                    old = self.replies.reply_topic
                    if await self.replies.rotate_reply_topic() is not None:
                        ends = {tp: n for tp, n in ends.items() if tp[0] != old}
                self.observe(ends)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker restarting, a topic not there yet: try again next round
                log.debug("embedded broker watch: %r", exc)
            await asyncio.sleep(self.interval_s)
