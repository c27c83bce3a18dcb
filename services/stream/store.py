"""The worker's table store: RocksDB files on the worker's disk (``rocksdict://``), or memory.

**Persistent store.** ``PRESETTLE_STORE=rocksdict://`` (the default) keeps each table
partition in its own RocksDB database (faust's RocksDB store, driven by the ``rocksdict``
wheel) under the worker's data directory, together with the changelog offset it holds
(faust writes it once the broker acknowledged the changelog record). A restarted worker
reads only the changelog records after that offset, instead of the whole changelog.
``memory://`` keeps the tables in memory and rebuilds them from the changelog on every
start. faust finds this store by the URL's scheme: :func:`register` adds ``rocksdict`` to
its store registry (pyproject.toml also names it in the ``faust.stores`` entry-point group).

**One data directory per worker** (:func:`claim_data_dir`): ``<PRESETTLE_DATA_DIR>/<worker
name>``, locked (``flock``) for the life of the process, so two workers on one machine never
open one RocksDB database (RocksDB's own lock would make the second retry, then crash).
Named workers (``PRESETTLE_WORKER_NAME``) always get their own directory back; an unnamed
one takes the first free ``worker-<n>``.

**A changelog behind the store (re-seed).** The embedded broker keeps everything in memory:
restarted, it comes back with empty topics. A worker whose store holds an offset at or past
the changelog partition's end then re-seeds that partition from its local store — every key
with its value — logs it, and counts the records in
``presettle_worker_state_reseeded_records_total``; the persisted offset becomes the re-seeded
partition's last offset. faust's own recovery check (persisted offset above the high water
→ ``ConsistencyError``, the worker crashes) is off (``recovery_consistency_check``): this
check replaces it. Standby copies of such a partition forget their offset and read the new
changelog from its start.

**Memory (bounded).** faust's RocksDB options give every table partition its own database with
a 64 MiB write buffer (up to three) and its own 2 GiB block cache. A memtable keeps every
version written to it until it is flushed, so with dozens of partition databases (two tables,
standbys) each state write stayed in memory until its partition had written 64 MiB: the worker's
resident memory grew by about the size of each state written (most of issue 9's soak growth,
78 → 229 MB in 30 min at 10 events/s; docs/operations.md, *Worker memory*, has the figures). :class:`BoundedOptions` gives every database of the process one shared
block cache of ``PRESETTLE_ROCKSDB_MEMORY_MB`` (default 64) and one write-buffer manager
that charges the memtables to that cache (flushing the largest once they pass half of it),
with 4 MiB write buffers (``PRESETTLE_ROCKSDB_WRITE_BUFFER_KB``) and index and filter blocks in the cache: RocksDB's memory is capped
by that one figure however many partitions the worker holds (docs/operations.md, *Worker memory*).

**The end of a partition.** The embedded broker (Tansu 0.6) answers ListOffsets with the
first offset of the partition's last record *batch* + 1, not the offset after its last record.
:func:`true_end_offsets` reads the last batch to find the real end; it is what the re-seed
check compares with. See docs/operations.md, *Patient state on disk*, for what faust's
recovery still does with the reported end.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP

from services.stream import metrics

log = logging.getLogger("presettle.worker")

SCHEME = "rocksdict"
LOCK_FILE = "LOCK"
# Re-seed: records in flight before waiting for the broker's acknowledgements.
RESEED_WINDOW = 2000
END_READ_TIMEOUT_S = 10.0


class DataDirBusy(RuntimeError):
    """Another process on this machine holds the worker's data directory."""


_held: list[Any] = []  # the open lock files (closing one would release its lock)


def claim_data_dir(base: str | os.PathLike[str], name: str = "") -> Path:
    """Create and lock this worker's data directory under ``base``; return it.

    ``name`` set: ``base/name``, or :class:`DataDirBusy` when another process holds it.
    ``name`` empty: the first of ``base/worker-0``, ``base/worker-1``, … that nobody holds."""
    root = Path(base)
    candidates: Iterable[str] = [name] if name else (f"worker-{i}" for i in range(1024))
    for candidate in candidates:
        path = root / candidate
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the life of the process
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            if name:
                raise DataDirBusy(
                    f"the data directory {path} is in use by another worker (pid {holder}): give each worker "
                    f"on this machine its own PRESETTLE_WORKER_NAME or PRESETTLE_DATA_DIR"
                ) from None
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held.append(handle)
        return path
    raise DataDirBusy(f"no free worker data directory under {root}")


def register() -> None:
    """Make ``rocksdict://`` name this store in faust's registry (also without the entry point installed)."""
    STORES.aliases.setdefault(SCHEME, f"{__name__}:Store")


async def true_end_offsets(bootstrap: str, tps: Iterable[TP], security: dict[str, Any] | None = None,
                           timeout: float = END_READ_TIMEOUT_S) -> dict[TP, int]:
    """The offset after each partition's last record (read from its last batch, not just ListOffsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from services.common import partition_ends

    wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=20, **(security or {}))
    await consumer.start()
    try:
        consumer.assign(wanted)
        ends = await partition_ends.end_offsets(consumer, wanted, timeout)
    finally:
        await consumer.stop()
    return {TP(ktp.topic, ktp.partition): end for ktp, end in ends.items()}


class FailureStreak:
    """Failures in a row (reset by a success); ``failed()`` says whether the limit is reached."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def ok(self) -> None:
        self.count = 0

    def failed(self) -> bool:
        self.count += 1
        return self.count >= self.limit


# Per database: the write buffer (memtable) size and how many may be kept; the write-buffer
# manager flushes earlier once all memtables together pass half the memory budget.
WRITE_BUFFER_BYTES = 4 << 20
MAX_WRITE_BUFFERS = 2


class BoundedOptions(faust_rocksdb.RocksDBOptions):
    """faust's RocksDB options with every database's memory under one process-wide budget."""

    _shared: tuple[int, Any, Any] | None = None  # (budget, Cache, WriteBufferManager), one per process

    def __init__(self, memory_bytes: int, write_buffer_bytes: int = WRITE_BUFFER_BYTES, **kwargs: Any) -> None:
        super().__init__(use_rocksdict=True, **kwargs)
        self.memory_bytes = memory_bytes
        self.write_buffer_bytes = write_buffer_bytes

    @classmethod
    def shared(cls, memory_bytes: int) -> tuple[Any, Any]:
        """The process's block cache and write-buffer manager (created once; the budget is the first asked)."""
        import rocksdict

        if cls._shared is None:
            cache = rocksdict.Cache(memory_bytes)
            manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(memory_bytes // 2, False, cache)
            cls._shared = (memory_bytes, cache, manager)
        return cls._shared[1], cls._shared[2]

    def as_options(self) -> Any:
        import rocksdict

        cache, manager = self.shared(self.memory_bytes)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_bytes)
        options.set_max_write_buffer_number(MAX_WRITE_BUFFERS)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(manager)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


def rocksdb_usage() -> dict[str, int]:
    """Bytes in the shared block cache (memtables included) and in the memtables (0 before any store opened)."""
    if BoundedOptions._shared is None:
        return {"cache": 0, "memtables": 0}
    _, cache, manager = BoundedOptions._shared
    return {"cache": int(cache.get_usage()), "memtables": int(manager.get_usage())}


class Store(faust_rocksdb.Store):
    """faust's RocksDB store on rocksdict, under one memory budget, re-seeding a changelog that fell behind it."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        kwargs.setdefault("driver", "rocksdict")
        super().__init__(url, app, table, **kwargs)
        from services.common.settings import get_settings

        settings = get_settings()
        self.rocksdb_options = BoundedOptions(settings.rocksdb_memory_mb << 20, settings.rocksdb_write_buffer_kb << 10,
                                              **(self.options or {}))

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                           generation_id: int = 0) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        topics = self.table.changelog_topic.topics
        mine = {tp for tp in newly_assigned if tp.topic in topics}
        if not mine:
            return
        held = {tp: offset for tp in mine if (offset := self._offset_if_open(tp)) is not None}
        if not held:
            return
        from services.common.kafka_security import aiokafka_kwargs
        from services.common.settings import get_settings

        settings = get_settings()
        ends = await true_end_offsets(settings.bootstrap, held, aiokafka_kwargs(settings))
        standbys = self.app.assignor.assigned_standbys()
        for tp, offset in sorted(held.items()):
            end = ends.get(tp)
            if end is None or offset < end:
                continue  # the changelog has everything the store has: the usual recovery
            if tp in standbys:
                log.warning("%s[%s]: the changelog ends at %s, before this standby's offset %s (a broker "
                            "restarted empty?): reading it again from its start", tp.topic, tp.partition, end, offset)
                self._db_for_partition(tp.partition).delete(self.offset_key)
                continue
            await self.reseed(tp, offset, end)

    def _offset_if_open(self, tp: TP) -> int | None:
        path = self.partition_path(tp.partition)
        if tp.partition not in self._dbs and not path.exists():
            return None  # never held here: nothing to compare
        return self.persisted_offset(tp)

    async def reseed(self, tp: TP, offset: int, end: int) -> int:
        """Write every key of the local partition to the changelog partition; return how many."""
        log.warning("%s[%s]: the store holds changelog offset %s but the changelog ends at %s (the broker lost "
                    "it: an embedded broker restarted empty?); re-seeding the changelog from the local store",
                    tp.topic, tp.partition, offset, end)
        producer = self.app.producer
        db = self._db_for_partition(tp.partition)
        last = -1
        count = 0
        pending: list[Any] = []

        async def drain() -> None:
            nonlocal last
            for fut in pending:
                last = max(last, (await fut).offset)
            pending.clear()

        for key, value in list(self._visible_items(db)):
            pending.append(await producer.send(tp.topic, key, value, tp.partition, None, None))
            count += 1
            if len(pending) >= RESEED_WINDOW:
                await drain()
        await drain()
        if count:
            self.set_persisted_offset(tp, last)
        else:
            db.delete(self.offset_key)
        metrics.STATE_RESEEDED.labels(self.table.name).inc(count)
        log.warning("%s[%s]: re-seeded %d record(s) from the local store (changelog now ends at %s)",
                    tp.topic, tp.partition, count, last + 1)
        return count


def partitioned_items(table: Any) -> Iterator[tuple[int, bytes, bytes]]:
    """``(partition, key, value)`` of the table's active partitions on this worker, for either store."""
    data = table.data
    actives = table.app.assignor.assigned_actives()
    topic = table.changelog_topic_name
    if isinstance(data, faust_rocksdb.Store):
        for partition, db in list(data._dbs.items()):
            if TP(topic, partition) in actives:
                yield from ((partition, k, v) for k, v in list(data._visible_items(db)))
        return
    from aiokafka.partitioner import DefaultPartitioner

    partitions = list(range(table.partitions or table.app.conf.topic_partitions))
    choose = DefaultPartitioner()
    for key, value in list(data.items()):
        partition = choose(key, partitions, partitions)
        if TP(topic, partition) in actives:
            yield partition, key, value


def delete(table: Any, partition: int, key: bytes) -> None:
    """Delete ``key`` outside a stream (a timer): locally, and with a tombstone on its changelog partition.

    ``del table[key]`` needs the current event's partition (faust raises TypeError in a timer)."""
    with contextlib.suppress(KeyError):
        del table.data[key]
    table.send_changelog(partition, key, None, value_serializer="raw")
