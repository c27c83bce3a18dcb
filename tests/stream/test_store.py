"""The worker's table store without a broker: the data-directory lock, the store registry, eviction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP

from services.rules import alert_index as index
from services.stream import alert_index, store

ROOT = Path(__file__).resolve().parents[2]


def test_named_worker_directory_is_locked_against_a_second_process(tmp_path: Path) -> None:
    mine = store.claim_data_dir(tmp_path, "worker-a")
    assert mine == tmp_path / "worker-a" and (mine / store.LOCK_FILE).read_text().strip() == str(os.getpid())
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from services.stream import store\n"
         "try: store.claim_data_dir(sys.argv[1], 'worker-a')\n"
         "except store.DataDirBusy as exc: print(exc); sys.exit(3)", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert other.returncode == 3, other.stderr
    assert "in use by another worker" in other.stdout and "PRESETTLE_WORKER_NAME" in other.stdout
    # An unnamed worker in another process takes the next free directory.
    free = subprocess.run(
        [sys.executable, "-c", "import sys; from services.stream import store; "
         "print(store.claim_data_dir(sys.argv[1], '').name)", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert free.returncode == 0, free.stderr
    assert free.stdout.strip() == "worker-0"  # worker-a is named; worker-0 was free
    unnamed = store.claim_data_dir(tmp_path, "")
    assert unnamed.name == "worker-0"  # that process ended: its lock went with it


def make_table(tmp_path: Path, url: str) -> tuple[faust.App, Any]:
    store.register()
    app = faust.App(f"evict-{url[:3]}", store=url, datadir=str(tmp_path / url[:3]), topic_partitions=4)
    table = app.Table("alert_index", default=None, partitions=4, key_type=bytes, value_type=bytes)
    return app, table


@pytest.mark.parametrize("url", ["rocksdict://", "memory://"])
def test_eviction_outside_a_stream_deletes_expired_entries_and_writes_tombstones(
        tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app, table = make_table(tmp_path, url)
    assert isinstance(table.data, store.Store) == (url == "rocksdict://")
    from aiokafka.partitioner import DefaultPartitioner

    now = 1_800_000_000.0
    partition_of = DefaultPartitioner()
    entries = {}
    for i in range(40):
        key = f"d{i:03d}".encode()
        at = now - index.WINDOW_S - 60 if i % 2 else now - 60  # odd keys expired
        entries[key] = (partition_of(key, [0, 1, 2, 3], [0, 1, 2, 3]), orjson.dumps(index.issue(None, "H1", ["a"], at)))
    for key, (partition, value) in entries.items():
        if isinstance(table.data, store.Store):
            table.data._db_for_partition(partition).put(key, value)
        else:
            table.data[key] = value
    # This worker is active for partitions 0–2; partition 3 is another worker's (or a standby here).
    actives = {TP(table.changelog_topic_name, p) for p in (0, 1, 2)}
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: actives)
    tombstones: list[tuple[int, bytes, Any]] = []
    monkeypatch.setattr(table, "send_changelog", lambda p, k, v, **kw: tombstones.append((p, k, v)))

    evicted = alert_index.evict(table, now)

    expected = {(p, k, None) for k, (p, _) in entries.items() if int(k[1:]) % 2 and p != 3}
    assert evicted == len(expected) > 0
    assert set(tombstones) == expected
    remaining = {k for _, k, _ in store.partitioned_items(table)}
    assert remaining == {k for k, (p, _) in entries.items() if p != 3 and int(k[1:]) % 2 == 0}
