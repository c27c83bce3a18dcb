"""A worker whose table store fails for good exits, is restarted, and decides what it had left.

Real parts: the embedded Tansu broker, the faust worker process with its RocksDB store, the
ingress over HTTP and the stack's own supervisor (as ``make run``). The fault is real too: the
worker's data directory is deleted under it, so RocksDB fails with an IO error at its next
memtable switch (small write buffers make that come after a few dozen writes) and every write
after it fails. Before, the worker stayed up and ready, failing every event.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from loadtest.chaos import read_audit
from services.stack import Stack
from tests.conftest import start_stack
from tests.e2e.test_chaos import Supervisor
from tests.e2e.test_core_path import ATORVASTATIN_A, post
from tests.factories import drug, dx, event, uid

pytestmark = pytest.mark.e2e

MAX_EVENTS = 600


async def _audit_event_ids(bootstrap: str, topic: str) -> Counter[str]:
    return Counter(r["event_id"] for r in await read_audit(bootstrap, topic, settle_s=2.0))


def test_a_worker_whose_store_fails_exits_and_its_restart_decides_every_event() -> None:
    stack: Stack = start_stack("store-failure", PRESETTLE_STORE="rocksdict://", PRESETTLE_ROCKSDB_WRITE_BUFFER_KB="64",
                               PRESETTLE_ROCKSDB_MEMORY_MB="8", PRESETTLE_STORE_FAILURE_LIMIT="3",
                               PRESETTLE_BUDGET_MS="1500")
    try:
        patient = uid("P")  # one patient: every write goes to one partition's database
        sent: list[str] = []
        with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as h1:
            first = event(patient=patient, diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_A, 30, 30)])
            post(h1, first)
            sent.append(first["event_id"])
            data_dir = Path(stack.settings.data_dir) / "worker-0"
            assert (data_dir / "LOCK").exists(), "the worker's RocksDB directory"
            shutil.rmtree(data_dir)

            answers: Counter[str] = Counter()
            with Supervisor(stack):
                deadline = time.monotonic() + 240
                while stack.restarts["worker-0"] < 1 and len(sent) < MAX_EVENTS and time.monotonic() < deadline:
                    body = event(patient=patient, diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_A, 30, 30)])
                    r = h1.post("/v1/events", json=body)
                    sent.append(body["event_id"])
                    answers[r.json().get("engine_status", str(r.status_code)) if r.status_code == 200
                            else str(r.status_code)] += 1
                assert stack.restarts["worker-0"] >= 1, (
                    f"the worker did not exit after {len(sent)} events with its store gone: {dict(answers)}")
                stack.wait_healthy(120)
                # After the restart: the store is rebuilt from the changelog and new events are decided.
                after = event(patient=patient, diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_A, 30, 30)])
                post(h1, after)
                sent.append(after["event_id"])

        assert answers["timeout"] >= 1, answers  # the events whose state could not be written got no answer
        log = (stack.log_dir / "worker-0.log").read_text() if stack.log_dir else ""
        assert "the table store failed 3 times in a row" in log
        # Nothing lost, nothing twice: every event sent has exactly one decision on the audit topic,
        # the ones that failed in the old process decided by the new one.
        deadline = time.monotonic() + 90
        while True:
            seen = asyncio.run(_audit_event_ids(stack.bootstrap, stack.settings.decisions_topic))
            missing = [e for e in sent if seen[e] == 0]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert not missing, f"{len(missing)} of {len(sent)} events never decided"
        twice = {e: n for e, n in seen.items() if e in set(sent) and n > 1}
        assert not twice, twice
    finally:
        stack.stop()
