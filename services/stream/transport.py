"""The worker's faust transport: a shorter fetch wait, and offsets committed only for finished events.

faust chooses its transport by the broker URL's scheme from a registry that
includes the setuptools entry-point group ``faust.transports``; pyproject.toml
registers :class:`Transport` there under the scheme ``presettle``, so the worker
uses ``presettle://host:port`` and faust itself stays unpatched.

**Fetch wait.** faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``
for the worker consumer. A broker that answers a fetch only when that wait
expires (the embedded Tansu broker does) then adds ~750 ms to every hop; the
worker uses ``PRESETTLE_FETCH_MAX_WAIT_MS`` instead.

**Commits (the rebalance loss of issue 9).** faust-streaming 0.15.3 commits the
offset of a message once its stream *acks* it, and a stream acks two kinds of
messages it never hands to the agent:

* during a rebalance (flow control suspended) and for messages fetched in an
  older consumer generation, ``Stream.__aiter__`` replaces the value with a
  "skipped" marker and acks it anyway ("we want to ack the filtered out
  message, otherwise the lag would increase", faust/streams.py);
* ``Consumer._new_offset`` then commits the first run of consecutive acked
  offsets. Its head check, ``min(acked) - committed > 1``, lets one missing
  offset through (``committed`` is the next offset to read, so ``min(acked) ==
  committed + 1`` means ``committed`` itself was never acked), and with no
  committed offset known (after every rebalance, until the first commit) there
  is no head check at all.

So the events a worker had fetched when a rebalance began — exactly the events
that had just been answered ``timeout`` because their partition was unserved —
were committed without being processed, and the worker that took the partition
over started after them: no decision, no state, a retry ``replayed: false``.
``tests/stream/test_commit_safety.py`` reproduces both steps against this class
and faust's own.

faust means to read such messages again — when it finds the flow stopped it
seeks every partition back to its committed offset — but that seek fails when a
partition is being revoked at the same moment ("exception performing seek when
flow not active: IllegalStateError: No current assignment", seen in the
workers' logs of the reproduction), and then the consumer goes on after them.

**Commits over gaps (the loss that remained).** faust's ``_drain_messages`` keeps
a read offset per partition and, when a message arrives more than one offset
after it, records the offsets in between as a *gap* (``Consumer._add_gap``);
``_new_offset`` then adds every gapped offset below the highest acked one to the
acked offsets — as if it had been processed — so the commit jumps over them.
Gaps are meant for compacted topics and transaction markers, but a rebalance
makes them from records that exist: ``seek`` / ``perform_seek`` set the read
offset back to the committed one while records fetched before the seek are
still on their way; the first of those (offset ``X``) opens a gap from the
committed offset to ``X``, moves the read offset to ``X``, and the records the
seek then delivers below ``X`` are dropped as "already read". Once the offset
at the head was processed the gap-filled commit passes over the dropped ones;
the partition's next owner starts after them and their decisions are lost.
This transport records no gap (``_add_gap`` only counts it, in
``presettle_worker_offset_jumps_total``) and ``_new_offset`` fills none: the
committed offset is the end of the run of processed offsets that starts at the
head, the dropped records are a hole, and a hole is read again (below). The
worker's input topics (events, patient status, alert index) are neither
compacted nor written in transactions, so their offsets have no real gaps.

The fix, kept in this transport: a message counts as acked for the commit only
when the agent marked it finished (:func:`mark_finished`, after its decision
reached the audit topic); a skipped message is released (so a rebalance does
not wait for it) but leaves a hole. The head check refuses any hole at the head
(the head is the committed offset, or the first offset fetched since the
partition was assigned) and, since one agent processes a partition in order, a
hole with finished offsets after it was passed over: the partition is sought
back to the hole and read again (the events after it are answered from the
idempotency record).

**Changelog end offsets.** faust's table recovery reads each changelog partition
up to its end offset from ListOffsets and raises ConsistencyError for a table
ahead of it; Tansu 0.6 lists the first offset of the last batch + 1, so
:meth:`Consumer.highwaters` reads each changelog's real end from its last batch
(services/stream/store.py ``true_end_offsets``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.utils.functional import consecutive_numbers
from mode.utils.futures import notify

from services.common.kafka_security import aiokafka_kwargs
from services.common.settings import get_settings
from services.stream import metrics

log = logging.getLogger("presettle.worker")


def fetch_max_wait_ms() -> int:
    return get_settings().fetch_max_wait_ms


# Per (topic, partition): offsets of messages the agent finished, taken out by Consumer.ack (and any
# left below the committed offset dropped when the commit moves on: never unbounded).
_finished: dict[tuple[str, int], set[int]] = {}
# A partition sought back to an unfinished offset is sought back again only if that offset
# is still unfinished this much later (the records queued ahead of it take time).
REWIND_AGAIN_S = 30.0


# Messages the agent started on and has not acked yet (their effects still being acknowledged).
_started: set[tuple[str, int, int]] = set()


def mark_started(message: Any) -> None:
    _started.add((message.topic, message.partition, message.offset))


def mark_done(message: Any) -> None:
    _started.discard((message.topic, message.partition, message.offset))


def mark_finished(message: Any) -> None:
    """The agent is done with this message (its effects are durable): it may be committed.

    A message already acked needs nothing more: the alert-index agent's stream acks each message
    itself (``stream.events()`` with acks), so its ack may come first; an entry made then
    would never be taken out (issue 9's soak: one per alert-index record, never freed)."""
    if getattr(message, "acked", False):
        return
    _finished.setdefault((message.topic, message.partition), set()).add(message.offset)


def finished_count() -> int:
    return sum(len(offsets) for offsets in list(_finished.values()))


def _take_finished(topic: str, partition: int, offset: int) -> bool:
    offsets = _finished.get((topic, partition))
    if offsets is None or offset not in offsets:
        return False
    offsets.discard(offset)
    return True


def _drop_finished_below(topic: str, partition: int, offset: int) -> None:
    offsets = _finished.get((topic, partition))
    if offsets:
        stale = [o for o in offsets if o < offset]
        offsets.difference_update(stale)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms()
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # First offset fetched per partition since it was assigned (the commit's head
        # while no committed offset is known).
        self._fetch_head: dict[TP, int] = {}
        # Partitions to read again from an offset that was passed over unfinished, and
        # partitions sought back whose first record has not come yet.
        self._rewind: dict[TP, int] = {}
        self._seeking: dict[TP, int] = {}
        self._rewound: dict[TP, tuple[int, float]] = {}
        self._seek_tries: dict[TP, int] = {}

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # -- which messages count as done ------------------------------------------
    def ack(self, message: Any) -> bool:
        finished = _take_finished(message.topic, message.partition, message.offset)
        if finished or not self.app.topics.acks_enabled_for(message.topic):
            return faust_aiokafka.Consumer.ack(self, message)
        # Skipped by the stream (rebalance, stale generation): not processed. Release it so
        # a rebalance does not wait for it, but never count it for the commit.
        if not message.acked:
            message.acked = True
            self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)
            metrics.UNPROCESSED_RELEASED.inc()
        return False

    # -- the commit's head --------------------------------------------------------
    async def getmany(self, timeout: float) -> Any:
        if self._rewind and self.flow_active:
            await self._rewind_partitions()
        heads = self._fetch_head
        seeking = self._seeking
        reseek: dict[TP, int] = {}
        async for tp, message in super().getmany(timeout):
            target = seeking.get(tp)
            if target is not None:
                # Records fetched before the seek took effect would move faust's read offset
                # past the rewound one (and it would drop that as "already read"): skip them
                # until the partition delivers the offset sought.
                if message.offset != target:
                    reseek[tp] = target
                    continue
                del seeking[tp]
                self._seek_tries.pop(tp, None)
            if tp not in heads:
                heads[tp] = message.offset
            yield tp, message
        for tp, target in reseek.items():
            tries = self._seek_tries[tp] = self._seek_tries.get(tp, 0) + 1
            if tries > 20:  # the offset is gone (retention): take what the partition has
                log.error("%s[%s]: offset %s cannot be read again; going on from the next record",
                          tp.topic, tp.partition, target)
                seeking.pop(tp, None)
                self._seek_tries.pop(tp, None)
                self._fetch_head.pop(tp, None)
            elif tp in seeking:
                await self.seek(tp, target)

    async def _rewind_partitions(self) -> None:
        assignment = self.assignment()
        for tp, offset in list(self._rewind.items()):
            del self._rewind[tp]
            if tp not in assignment:
                continue
            log.warning("%s[%s]: offset %s was passed over unfinished (a rebalance); reading again from it",
                        tp.topic, tp.partition, offset)
            metrics.REWINDS.inc()
            self._fetch_head[tp] = offset
            self._seeking[tp] = offset
            self._seek_tries.pop(tp, None)
            await self.seek(tp, offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._fetch_head.pop(tp, None)
            self._rewind.pop(tp, None)
            self._seeking.pop(tp, None)
            self._rewound.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def perform_seek(self) -> None:
        # Reading starts again at the committed offsets: every head is that offset now.
        self._fetch_head.clear()
        self._seeking.clear()
        await super().perform_seek()

    def _commit_head(self, tp: TP) -> int | None:
        committed = self._committed_offset[tp]
        return committed if committed is not None else self._fetch_head.get(tp)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """faust records the offsets a stream passed over as done (see the module docstring);
        here they are only counted: left unprocessed, they stop the commit and are read again."""
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        # faust's gap runs to the arriving offset itself, which is processed.
        if offset_from < offset_to:
            metrics.OFFSET_JUMPS.inc()
            log.warning("%s[%s]: offsets %s..%s were passed over (a seek during a rebalance); not committed "
                        "over, read again", tp.topic, tp.partition, offset_from, offset_to - 1)

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit: the end of the run of processed offsets starting at the head.

        faust's ``_new_offset`` without its gap filling and with a head check that lets no
        hole through (see the module docstring)."""
        acked = self._acked[tp]
        if not acked:
            return None
        acked.sort()
        head = self._commit_head(tp)
        if head is None or acked[0] > head:
            if head is not None and (tp.topic, tp.partition, head) not in _started:
                self._passed_over(tp, head)
            return None
        self._rewound.pop(tp, None)
        batch = next(consecutive_numbers(acked))
        acked[: len(batch)] = []
        self._acked_index[tp].difference_update(batch)
        _drop_finished_below(tp.topic, tp.partition, batch[-1] + 1)
        return batch[-1] + 1

    def _passed_over(self, tp: TP, head: int) -> None:
        """The next offset to commit is neither finished nor in progress, yet later ones were
        finished (one agent takes a partition's records in order): it was skipped or dropped
        in a rebalance, or its produce failed. Read the partition again from it — once: records
        fetched before the seek may still be queued ahead of it."""
        now = time.monotonic()
        last = self._rewound.get(tp)
        if last is None or last[0] != head or now - last[1] > REWIND_AGAIN_S:
            self._rewind[tp] = head
            self._rewound[tp] = (head, now)

    # -- the end of a changelog ------------------------------------------------------
    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """The brokers' high waters; for changelog partitions, the offset after their last record.

        faust's recovery reads a changelog up to this offset. The embedded broker (Tansu 0.6)
        reports the first offset of a partition's last record batch + 1, so the records after
        that batch's first were never read back: a restart lost those patients' state
        (tests/e2e/test_changelog_end.py). A changelog's end is read from its last batch
        (services/stream/store.py true_end_offsets); on Kafka the two agree."""
        reported = dict(await super().highwaters(*partitions))
        changelogs = [tp for tp in partitions if tp.topic.endswith("-changelog")]
        if changelogs:
            from services.stream.store import true_end_offsets

            settings = get_settings()
            try:
                true = await true_end_offsets(settings.bootstrap, changelogs, aiokafka_kwargs(settings))
            except Exception as exc:  # the broker's figure, as faust would use it
                log.warning("could not read the changelogs' last batches (%r): using the reported ends", exc)
            else:
                for tp, end in true.items():
                    if reported.get(tp) is None or end > reported[tp]:
                        reported[tp] = end
                        metrics.HIGHWATERS_RAISED.inc()
        return reported


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
