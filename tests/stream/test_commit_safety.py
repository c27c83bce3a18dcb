"""The cause of the rebalance loss (issue 9), shown on faust's own commit code, and the fix.

faust-streaming 0.15.3 acks a message its stream *skipped* during a rebalance
(flow control suspended, or fetched in an older consumer generation), and its
``Consumer._new_offset`` commits past a hole at the head of the acked offsets.
Together: a worker that had fetched events when a rebalance began commits their
offsets without processing them. No broker here: the commit arithmetic is
exercised directly, on faust's class and on ours (services/stream/transport.py).
The end-to-end proof is tests/e2e/test_chaos.py (two workers, kill -9, rebalance).
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust import streams
from faust.transport import consumer as faust_consumer
from faust.types import TP
from intervaltree import IntervalTree

from services.stream import transport

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
