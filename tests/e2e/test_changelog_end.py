"""A restarted worker recovers every patient from a changelog written in batches (Tansu's end offset).

The embedded broker (Tansu 0.6) reports a partition's end as the first offset of its last record
batch + 1. faust's recovery reads a changelog up to that reported end, so with batched changelog
writes it stopped before the last batch's later records: those patients' state was lost on a
restart. The worker's transport asks for the true end (services/stream/store.py true_end_offsets).
"""

from __future__ import annotations

import asyncio
import signal
import tempfile

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from services.rules import decision as dec
from services.rules.engine import Engine
from services.stream.store import true_end_offsets
from tests.conftest import start_stack
from tests.e2e.test_core_path import ATORVASTATIN_A, ATORVASTATIN_B, post, rule_ids
from tests.factories import drug, dx, event, uid

pytestmark = pytest.mark.e2e

PATIENTS = 60


async def _write_states(bootstrap: str, topic: str, patients: list[str]) -> None:
    """The patients' states after their first prescription (through the engine, as the worker writes
    them), sent to the state changelog together: in one record batch, as a busy worker's are."""
    engine = Engine.load()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        sent = []
        for p in patients:
            state, _ = dec.handle_event(engine, None, event(
                patient=p, institution="H1", occurred_at="2026-03-01T09:00:00+08:00",
                diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_A, 30, 30)]))
            sent.append(await producer.send(topic, state, key=p.encode(), partition=0))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _ends(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        reported = (await consumer.end_offsets([TopicPartition(topic, 0)]))[TopicPartition(topic, 0)]
    finally:
        await consumer.stop()
    return reported, (await true_end_offsets(bootstrap, [TP(topic, 0)]))[TP(topic, 0)]


@pytest.mark.parametrize("store", ["memory://", "rocksdict://"])
def test_restart_recovers_patients_from_the_last_changelog_batch(store: str) -> None:
    stack = start_stack(f"changelog-end-{store[:3]}", PRESETTLE_STORE=store, PRESETTLE_PARTITIONS="1")
    try:
        patients = [uid("P") for _ in range(PATIENTS)]
        asyncio.run(_write_states(stack.bootstrap, stack.settings.state_changelog_topic, patients))
        reported, true_end = asyncio.run(_ends(stack.bootstrap, stack.settings.state_changelog_topic))
        # The changelog was written in batches: the reported end falls short of the real one.
        assert true_end >= PATIENTS and reported < true_end, (reported, true_end)

        # A clean stop (offsets committed: no event is read again, so nothing rebuilds the
        # state but the changelog).
        worker = stack.workers.pop(0)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        # A data directory the worker never used: its store is built from the changelog alone
        # (as on a machine that never held these partitions).
        stack.env["PRESETTLE_DATA_DIR"] = tempfile.mkdtemp(prefix="presettle-data-")
        stack.start_worker(0)
        stack.wait_healthy(120)
        with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h2"}, timeout=30) as h2:
            missing = [p for p in patients
                       if "R19" not in rule_ids(post(h2, event(patient=p, institution="H2",
                                                               occurred_at="2026-03-11T10:00:00+08:00",
                                                               diagnoses=[dx("I10")],
                                                               items=[drug(ATORVASTATIN_B, 30, 30)])))]
        assert missing == [], f"{len(missing)} of {PATIENTS} patients lost their history in the restart"
    finally:
        stack.stop()
