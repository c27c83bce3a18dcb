"""The offset after a partition's last record, on any Kafka-protocol broker.

Reading "to the end" of a partition needs its end. Kafka's ListOffsets (``end_offsets``)
gives the offset after the last record; the embedded broker (Tansu 0.6) gives the first
offset of the last record *batch* + 1, so every reader that stops at that figure misses the
records after the first of the last batch (a changelog restored short, a backtest, a
dead-letter replay or an audit check missing records; /work/shared/stack.md,
tests/e2e/test_changelog_end.py). :func:`end_offsets` reads the last batch of each partition
and takes the offset after its last record; on Kafka the two figures agree and the extra
fetch costs one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

DEFAULT_TIMEOUT_S = 10.0


async def end_offsets(consumer: Any, tps: Iterable[Any], timeout: float = DEFAULT_TIMEOUT_S) -> dict[Any, int]:
    """The offset after each partition's last record.

    ``consumer``: a started ``AIOKafkaConsumer`` assigned (at least) to ``tps``. Its positions on
    those partitions are moved: seek where you want to read from afterwards. A last batch not read
    within ``timeout`` leaves that partition at the broker's figure (what a plain reader would use)."""
    wanted = list(tps)
    if not wanted:
        return {}
    loop = asyncio.get_running_loop()
    ends = {tp: int(end) for tp, end in (await asyncio.wait_for(consumer.end_offsets(wanted), timeout)).items()}
    last = {tp: end - 1 for tp, end in ends.items()}
    unread = {tp for tp, end in ends.items() if end > 0}
    for tp in unread:
        consumer.seek(tp, ends[tp] - 1)  # the last batch starts there (or the last record is there)
    deadline = loop.time() + timeout
    while unread and loop.time() < deadline:
        for tp, records in (await consumer.getmany(*unread, timeout_ms=200)).items():
            if records:
                last[tp] = max(last[tp], max(r.offset for r in records))
                unread.discard(tp)
    return {tp: max(ends[tp], last[tp] + 1) for tp in wanted}
