"""The causes of the rebalance loss (issue 9), shown on faust's own commit code, and the fix.

faust-streaming 0.15.3 acks a message its stream *skipped* during a rebalance
(flow control suspended, or fetched in an older consumer generation), and its
``Consumer._new_offset`` commits past a hole at the head of the acked offsets.
Together: a worker that had fetched events when a rebalance began commits their
offsets without processing them. And its ``_drain_messages`` records offsets a
stream passed over (after a seek, records fetched before it arrive first) as a
gap that ``_new_offset`` commits over, while the records the seek delivers below
them are dropped as already read. No broker here: the commit arithmetic is
exercised directly, on faust's class and on ours (services/stream/transport.py).
The end-to-end proof is tests/e2e/test_chaos.py (two workers, kill -9, rebalance).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust import streams
from faust.transport import consumer as faust_consumer
from faust.types import TP
from intervaltree import IntervalTree

from services.stream import metrics, transport

TP0 = TP("t.events", 0)


def fake_consumer(committed: int | None, acked: list[int], head: int | None = None) -> Any:
    c = SimpleNamespace(
        _acked=defaultdict(list, {TP0: list(acked)}),
        _acked_index=defaultdict(set, {TP0: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {TP0: committed}),
        _fetch_head={TP0: head} if head is not None else {},
        _rewind={},
        _rewound={},
    )
    c._commit_head = lambda tp: transport.Consumer._commit_head(c, tp)
    c._passed_over = lambda tp, head: transport.Consumer._passed_over(c, tp, head)
    return c


def test_faust_skips_and_acks_messages_during_a_rebalance() -> None:
    # The stream replaces a message fetched while flow control is suspended (or in an older
    # generation) by a "skipped" value, never yields it to the agent, and acks it anyway.
    source = inspect.getsource(streams.Stream._py_aiter)
    assert "not self.app.flow_control.is_active()" in source
    assert "do_ack or value is skipped_value" in source


def test_faust_commits_past_an_unprocessed_offset_at_the_head() -> None:
    # Committed offset 10 = the next offset to process. Offset 10 was skipped (never acked by
    # processing), 11 and 12 were processed: faust commits 13, so 10 is never read again.
    c = fake_consumer(committed=10, acked=[11, 12])
    assert faust_consumer.Consumer._new_offset(c, TP0) == 13
    # With no committed offset known (every partition right after a rebalance) any hole passes.
    c = fake_consumer(committed=None, acked=[5, 6])
    assert faust_consumer.Consumer._new_offset(c, TP0) == 7


def test_fixed_head_check_waits_for_the_hole_and_reads_it_again() -> None:
    c = fake_consumer(committed=10, acked=[11, 12])
    assert transport.Consumer._new_offset(c, TP0) is None
    assert c._rewind == {TP0: 10}  # passed over unfinished: the partition is read again from 10
    c._rewind.clear()
    assert transport.Consumer._new_offset(c, TP0) is None
    assert c._rewind == {}  # once: the records queued ahead of it are still being processed
    # No committed offset: the first offset fetched since the assignment is the head.
    c = fake_consumer(committed=None, acked=[5, 6], head=4)
    assert transport.Consumer._new_offset(c, TP0) is None
    assert c._rewind == {TP0: 4}
    # A head still being processed (its effects not yet acknowledged) is no hole.
    c = fake_consumer(committed=20, acked=[21])
    transport.mark_started(SimpleNamespace(topic=TP0.topic, partition=0, offset=20))
    assert transport.Consumer._new_offset(c, TP0) is None and c._rewind == {}
    transport.mark_done(SimpleNamespace(topic=TP0.topic, partition=0, offset=20))
    # No hole: the run is committed as faust would.
    c = fake_consumer(committed=10, acked=[10, 11, 12, 14])
    assert transport.Consumer._new_offset(c, TP0) == 13
    assert c._acked[TP0] == [14]
    assert transport.Consumer._new_offset(fake_consumer(committed=None, acked=[4, 5], head=4), TP0) == 6


def test_only_finished_messages_count_for_the_commit() -> None:
    acks: list[int] = []
    released: list[Any] = []
    c = SimpleNamespace(
        app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True)),
        _unacked_messages=SimpleNamespace(discard=released.append),
        _waiting_for_ack=None,
    )
    finished = SimpleNamespace(topic="t.events", partition=0, offset=7, acked=False)
    skipped = SimpleNamespace(topic="t.events", partition=0, offset=8, acked=False)
    transport.mark_finished(finished)
    original = faust_consumer.Consumer.ack
    try:
        faust_consumer.Consumer.ack = lambda self, m: acks.append(m.offset) or True  # type: ignore[method-assign]
        assert transport.Consumer.ack(c, finished) is True
        assert transport.Consumer.ack(c, skipped) is False
    finally:
        faust_consumer.Consumer.ack = original  # type: ignore[method-assign]
    assert acks == [7]  # the skipped message never reaches faust's acked offsets ...
    assert skipped.acked is True and released == [skipped]  # ... but a rebalance does not wait for it


def test_faust_commits_over_a_gap_ours_stops_at_it() -> None:
    # Offsets 10 and 11 processed, 12..14 recorded as a gap, 15 processed: faust commits 16.
    c = fake_consumer(committed=10, acked=[10, 11, 15])
    c._gap[TP0].addi(12, 16)
    assert faust_consumer.Consumer._new_offset(c, TP0) == 16
    # Ours commits the processed run from the head only, then finds the hole and reads it again.
    c = fake_consumer(committed=10, acked=[10, 11, 15])
    c._gap[TP0].addi(12, 16)
    assert transport.Consumer._new_offset(c, TP0) == 12
    c._committed_offset[TP0] = 12
    assert transport.Consumer._new_offset(c, TP0) is None
    assert c._rewind == {TP0: 12}
    assert c._acked[TP0] == [15]  # kept: counted once 12..14 are processed
    c._acked[TP0].extend([12, 13, 14])
    c._acked_index[TP0].update([12, 13, 14])
    assert transport.Consumer._new_offset(c, TP0) == 16


def drain(consumer_cls: Any, read_offset: int, batch: list[int]) -> tuple[Any, list[int]]:
    """Run faust's own ``Consumer._drain_messages`` over one fetched batch of TP0 records.

    The callback stands for the stream: every record it is handed is processed and acked."""
    processed: list[int] = []
    stopped = asyncio.Event()
    c = fake_consumer(committed=read_offset, acked=[])

    async def getmany(timeout: float) -> Any:
        for offset in batch:
            yield TP0, SimpleNamespace(topic=TP0.topic, partition=0, offset=offset, key=None, value=None)
        stopped.set()

    async def callback(message: Any) -> None:
        processed.append(message.offset)
        c._acked[TP0].append(message.offset)
        c._acked_index[TP0].add(message.offset)

    async def wait_first(first: Any, second: Any) -> None:
        second.close()
        await first

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    c.callback = callback
    c.getmany = getmany
    c._stopped = stopped
    c._read_offset = defaultdict(lambda: None, {TP0: read_offset})
    c.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
    c._commit_every = None
    c.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    c.sleep = sleep
    c.should_stop = False
    c.wait_first = wait_first
    c.suspend_flow = asyncio.Event()
    c.consumer_stopped_errors = ()
    c.log = SimpleNamespace(dev=lambda *a: None)
    c._add_gap = lambda tp, start, end: consumer_cls._add_gap(c, tp, start, end)
    asyncio.run(faust_consumer.Consumer._drain_messages(c, SimpleNamespace(_stopped=stopped)))
    return c, processed


def test_after_a_seek_faust_drops_records_and_commits_over_them() -> None:
    # Sought back to the committed offset 10 while a record fetched before the seek (14) is
    # still on its way: 10 arrives, then 14 opens a gap 11..14, then the seek's 11..13 are
    # dropped as already read, then 15.
    batch = [10, 14, 11, 12, 13, 15]
    c, processed = drain(faust_consumer.Consumer, 10, batch)
    assert processed == [10, 14, 15]  # 11..13 never reached the stream
    # ... and are committed over (15: 14 is in the acked list twice, once from the gap): lost.
    assert faust_consumer.Consumer._new_offset(c, TP0) == 15

    jumps = metrics.OFFSET_JUMPS._value.get()
    c, processed = drain(transport.Consumer, 10, batch)
    assert processed == [10, 14, 15]
    assert metrics.OFFSET_JUMPS._value.get() == jumps + 1  # the gap is counted, not recorded
    assert not c._gap[TP0]
    assert transport.Consumer._new_offset(c, TP0) == 11  # the commit stops at the first dropped record
    c._committed_offset[TP0] = 11
    assert transport.Consumer._new_offset(c, TP0) is None
    assert c._rewind == {TP0: 11}  # ... which is read again


def test_finished_offsets_never_accumulate() -> None:
    """The bookkeeping of finished offsets stays bounded (issue 9's soak: one entry per alert-index
    record was never freed — that agent's stream acks a message before the agent marks it finished)."""
    topic = "t.bounded"
    # Acked already (a stream that acks itself): nothing is recorded.
    transport.mark_finished(SimpleNamespace(topic=topic, partition=0, offset=1, acked=True))
    assert transport._finished.get((topic, 0), set()) == set()
    # Finished, then acked: taken out by the ack.
    transport.mark_finished(SimpleNamespace(topic=topic, partition=0, offset=2, acked=False))
    assert transport._take_finished(topic, 0, 2) and not transport._take_finished(topic, 0, 2)
    # Left behind for whatever reason: dropped once the commit passes them.
    for offset in (3, 4, 9):
        transport.mark_finished(SimpleNamespace(topic=topic, partition=0, offset=offset, acked=False))
    c = fake_consumer(committed=3, acked=[3, 4, 5])
    tp = TP(topic, 0)
    c._acked, c._acked_index = defaultdict(list, {tp: [3, 4, 5]}), defaultdict(set, {tp: {3, 4, 5}})
    c._committed_offset = defaultdict(lambda: None, {tp: 3})
    assert transport.Consumer._new_offset(c, tp) == 6
    assert transport._finished[(topic, 0)] == {9}
